// The customer page: wires the views together. See README "The customer page" for what a host app
// passes in the URL fragment.

import { Api, ApiError, explain } from "./api.js";
import { VerificationBadge } from "./badge.js";
import { renderCharts } from "./charts.js";
import { DeletionsView } from "./deletions.js";
import { HistoryView } from "./history.js";
import { has, setLanguage, t, word } from "./i18n.js";
import { LiveStream } from "./live.js";
import { PrivacyView } from "./privacy.js";
import { applyTheme, readSession } from "./session.js";

const PURPOSES = ["troubleshooting", "customer_support", "quality_review", "model_training", "security",
  "legal_request", "other"];
// Entries that change what the other views show: they are loaded again when a new one comes in.
const REFRESHES = {
  consent_changed: "privacy", troubleshooting_granted: "privacy", troubleshooting_withdrawn: "privacy",
  deletion_requested: "deletions", deletion_task_completed: "deletions", deletion_completed: "deletions",
  deletion_rejected: "deletions",
};
const $ = (id) => document.getElementById(id);

/** One message at a time: information fades after a while; an error stays until the next message. */
function reporter() {
  const message = $("message");
  let timer = null;
  const report = (text, isError = false, { transient = false } = {}) => {
    message.textContent = text;
    message.dataset.kind = isError ? "error" : "info";
    message.dataset.transient = String(transient);
    message.hidden = false;
    clearTimeout(timer);
    if (!isError) timer = setTimeout(() => { message.hidden = true; }, 5000);
  };
  // seenby can be reached again: a message that said it could not is out of date.
  report.recovered = () => {
    if (message.dataset.transient === "true") message.hidden = true;
  };
  return report;
}

/** No one is signed in (no token, or one seenby refused before anything was shown): only that message. */
function signedOut(report, key) {
  $("badge").hidden = true;
  document.querySelector(".tabs").hidden = true;
  for (const view of document.querySelectorAll(".view")) view.hidden = true;
  report(t(key), true);
}

/** A new entry in words: "New just now: …", never the entry's internal kind. */
function kindText(kind) {
  return has(`kind.${kind}`) ? t(`kind.${kind}`) : t("kind.other");
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

function objectionDialog(api, report, history, failed) {
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
        failed(error);
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
    // The token lives in memory only: after a reload the host app has to open the page again.
    signedOut(report, session.opened ? "session.expired" : "session.missing");
    return;
  }
  const api = new Api(session.token);
  let live = null;
  let ended = false;
  const failed = (error) => {
    if (ended) return; // the session is over: that is what the customer needs to know
    if (error instanceof ApiError && error.signIn) {
      ended = true;
      live?.stop();
      report(t("session.expired"), true);
    } else {
      report(explain(error), true, { transient: error instanceof ApiError && error.transient });
    }
  };
  let verify = () => {};
  const badge = new VerificationBadge({
    root: $("badge"), title: $("badge-title"), detail: $("badge-detail"), progress: $("badge-progress"),
    failures: $("badge-failures"), retry: $("badge-retry"),
  }, () => verify());
  let openObjection = () => {};
  const history = new HistoryView(api, {
    list: $("history"), end: $("history-end"), sentinel: $("history-more"), form: $("filters"),
    stale: $("history-stale"),
  }, (item) => openObjection(item), (item, verdict) => badge.flagShown(item, verdict), failed);
  openObjection = objectionDialog(api, report, history, failed);
  const privacy = new PrivacyView(api, { grants: $("grants"), grantForm: $("grant-form") }, report);
  const deletions = new DeletionsView(api, { list: $("deletions"), form: $("deletion-form") }, report);
  let accesses = [];
  const loaded = new Set();
  const views = { privacy: () => privacy.load(), deletions: () => deletions.load() };
  const load = (name) => {
    loaded.add(name);
    views[name]().catch((error) => {
      loaded.delete(name); // tried again when the tab is shown again
      failed(error);
    });
  };
  tabs((name) => {
    if (name === "pictures") renderCharts($("charts"), accesses);
    if (views[name] && !loaded.has(name)) load(name);
  });

  try {
    await history.more();
  } catch (error) {
    if (error instanceof ApiError && error.signIn) {
      signedOut(report, "session.expired"); // nothing was shown: nothing to check either
      return;
    }
    failed(error);
  }
  performance.mark("seenby:first-screen");
  api.get("/v1/me/objections", { limit: 500 })
    .then((page) => history.setObjected(page.items.map((o) => o.objected_entry_hash)))
    .catch(() => {});

  verify = async () => {
    const result = await badge.run({
      apiBase: window.location.origin, token: session.token, verifierKey: session.key || null,
      policy: session.policyText || null, customerId: api.customerId,
    });
    if (!result) {
      history.setUnchecked(); // no key to check with: no row is called checked (or "checking")
      return;
    }
    if (!performance.getEntriesByName("seenby:verified").length) performance.mark("seenby:verified");
    if (badge.state === "signin" || badge.state === "unavailable") {
      // Nothing was checked, and nothing was found wrong: no row is called either.
      history.setUnchecked();
      if (badge.state === "signin") failed(new ApiError(401, null));
      return;
    }
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
  const status = $("live");
  live = new LiveStream(api, (item) => {
    const { entry: _entry, canonical: _canonical, ...shown } = item;
    history.prepend(shown);
    status.textContent = t("live.new", { what: kindText(shown.kind) });
    const view = REFRESHES[shown.kind];
    if (view && loaded.has(view)) {
      if ($(`view-${view}`).hidden) loaded.delete(view); // loaded afresh when next shown
      else load(view);
    }
    // Check the new entry too, once things settle (it joins the log within a second or so).
    clearTimeout(again);
    again = setTimeout(verify, 2000);
  }, (state) => {
    const before = status.dataset.state;
    status.dataset.state = state;
    if (state === "stopped") {
      status.textContent = "";
      failed(new ApiError(401, null));
    } else if (state === "reconnecting") {
      status.textContent = t("live.reconnecting");
    } else if (before === "reconnecting") {
      // Back: say so, and do again what could not be done while seenby was out of reach.
      status.textContent = t("live.back");
      report.recovered();
      history.retry();
      if (badge.state === "unavailable" || badge.state === "partial") verify();
    }
  });
  live.start();
}

main();
