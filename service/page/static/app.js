// The customer page: wires the views together. See README "The customer page" for what a host app
// passes in the URL fragment.

import { Api, ApiError } from "./api.js";
import { VerificationBadge } from "./badge.js";
import { renderCharts } from "./charts.js";
import { DeletionsView } from "./deletions.js";
import { HistoryView } from "./history.js";
import { setLanguage, t, word } from "./i18n.js";
import { LiveStream } from "./live.js";
import { PrivacyView } from "./privacy.js";
import { applyTheme, forgetSession, readSession } from "./session.js";

const PURPOSES = ["troubleshooting", "customer_support", "quality_review", "model_training", "security",
  "legal_request", "other"];
const $ = (id) => document.getElementById(id);

function reporter() {
  const message = $("message");
  let timer = null;
  return (text, isError = false) => {
    message.textContent = text;
    message.dataset.kind = isError ? "error" : "info";
    message.hidden = false;
    clearTimeout(timer);
    if (!isError) timer = setTimeout(() => { message.hidden = true; }, 5000);
  };
}

function tabs(onShow) {
  const buttons = [...document.querySelectorAll(".tabs__tab")];
  const show = (name) => {
    for (const button of buttons) {
      const current = button.dataset.view === name;
      if (current) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
      $(`view-${button.dataset.view}`).hidden = !current;
    }
    onShow(name);
  };
  for (const button of buttons) button.addEventListener("click", () => show(button.dataset.view));
  return show;
}

function fillPurposes() {
  const select = document.querySelector("#filters select[name=purpose]");
  for (const purpose of PURPOSES) {
    const option = document.createElement("option");
    option.value = purpose;
    option.textContent = word("purpose", purpose);
    select.append(option);
  }
}

function objectionDialog(api, report, history) {
  const dialog = $("objection-dialog");
  const form = $("objection-form");
  let current = null;
  $("objection-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reason = String(new FormData(form).get("reason") || "").trim();
    const body = { entry_hash: current.entry_hash, ...(reason ? { reason } : {}) };
    try {
      await api.post("/v1/me/objections", body);
      report(t("objection.saved"));
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 409)) {
        report(t("common.failed", { detail: error.message }), true);
        return;
      }
      report(t("objection.already"));
    }
    history.setObjected([current.entry_hash]);
    dialog.close();
  });
  return (item) => {
    current = item;
    form.reset();
    $("objection-summary").textContent = t("objection.summary", {
      action: word("action", item.action), clip: item.clip_id, organization: item.actor?.organization || "",
    });
    dialog.showModal();
  };
}

async function main() {
  const session = readSession(window.location, window.sessionStorage, window.history);
  applyTheme(session, document.documentElement);
  await setLanguage(session.lang || navigator.language?.slice(0, 2));
  fillPurposes();
  const report = reporter();
  if (!session.token) {
    forgetSession(window.sessionStorage);
    $("badge").hidden = true;
    report(t("session.missing"), true);
    return;
  }
  const api = new Api(session.token);
  const badge = new VerificationBadge({
    root: $("badge"), title: $("badge-title"), detail: $("badge-detail"), progress: $("badge-progress"),
    failures: $("badge-failures"),
  });
  let openObjection = () => {};
  const history = new HistoryView(api, {
    list: $("history"), end: $("history-end"), sentinel: $("history-more"), form: $("filters"),
  }, (item) => openObjection(item), (item, verdict) => badge.flagShown(item, verdict));
  openObjection = objectionDialog(api, report, history);
  const privacy = new PrivacyView(api, { grants: $("grants"), grantForm: $("grant-form") }, report);
  const deletions = new DeletionsView(api, { list: $("deletions"), form: $("deletion-form") }, report);
  let accesses = [];
  const loaded = new Set();
  tabs((name) => {
    if (name === "pictures") renderCharts($("charts"), accesses);
    if (loaded.has(name)) return;
    loaded.add(name);
    const load = { privacy: () => privacy.load(), deletions: () => deletions.load() }[name];
    load?.().catch((error) => failed(error));
  });

  const failed = (error) => {
    if (error instanceof ApiError && error.status === 401) {
      forgetSession(window.sessionStorage);
      report(t("session.expired"), true);
    } else {
      report(t("common.failed", { detail: error.message }), true);
    }
  };

  await history.more().catch(failed);
  performance.mark("seenby:first-screen");
  api.get("/v1/me/objections", { limit: 500 })
    .then((page) => history.setObjected(page.items.map((o) => o.objected_entry_hash)))
    .catch(() => {});

  const verify = async () => {
    const result = await badge.run({
      apiBase: window.location.origin, token: session.token, verifierKey: session.key || null,
      policy: session.policyText || null, customerId: api.customerId,
    });
    if (!result) return;
    if (!performance.getEntriesByName("seenby:verified").length) performance.mark("seenby:verified");
    const entries = new Map(Object.entries(result.verified || {}));
    let lastSeq = -1;
    accesses = [];
    for (const text of entries.values()) {
      const entry = JSON.parse(text);
      lastSeq = Math.max(lastSeq, entry.customer_seq);
      if (entry.kind === "access") accesses.push(entry);
    }
    history.setVerified({ entries, lastSeq: result.ok ? lastSeq : Number.MAX_SAFE_INTEGER });
    if (!$("view-pictures").hidden) renderCharts($("charts"), accesses);
  };
  verify();

  let again = null;
  const live = new LiveStream(api, (item) => {
    const { entry: _entry, canonical: _canonical, ...shown } = item;
    history.prepend(shown);
    $("live").textContent = t("live.new", { what: word("kind", shown.kind) });
    // Check the new entry too, once things settle (it joins the log within a second or so).
    clearTimeout(again);
    again = setTimeout(verify, 2000);
  }, (state) => {
    $("live").dataset.state = state;
    if (state === "stopped") failed(new ApiError(401, null));
  });
  live.start();
}

main();
