// The verification badge: runs the check in a worker (off the main thread) and says, in plain words,
// whether everything the page shows is in the signed log and complete, or exactly what failed.
//
// Its states (data-state): "checking"; "verified" (all of it holds); "partial" (the entries hold, but
// whether something was left out could not be checked); "unavailable" (seenby could not be reached
// or failed: nothing checked, nothing found wrong); "signin" (the token was refused); "failed" (a
// mismatch: what seenby sent does not match the signed log, or no key to check it with).

import { clear, el } from "./dom.js";
import { formatNumber, has, t } from "./i18n.js";

/** What a result from the worker says, as one of the badge's states. */
export function outcome(result) {
  const failures = result.failures || [];
  if (failures.some((failure) => failure.check !== "fetch")) return "failed";
  if (failures.some((failure) => failure.status === 401 || failure.status === 403)) return "signin";
  if (failures.length || !result.ok) return "unavailable";
  if (result.complete === false) return "failed";
  if (result.complete === null && result.completenessProblem) return "partial";
  return "verified";
}

export class VerificationBadge {
  constructor(elements, onRetry = () => {}) {
    this.root = elements.root;
    this.title = elements.title;
    this.detail = elements.detail;
    this.progress = elements.progress;
    this.failures = elements.failures;
    this.retry = elements.retry;
    this.retry.addEventListener("click", () => onRetry());
    this.worker = null;
    this.startedAt = 0;
    this.result = null;
  }

  get state() {
    return this.root.dataset.state;
  }

  /** Run the check; resolves with the worker's result (also kept on `this.result`). */
  run(request) {
    this.worker?.terminate();
    clear(this.failures);
    this.show("checking", t("verify.checking"), "");
    this.startedAt = performance.now();
    if (!request.verifierKey) {
      this.show("failed", t("verify.no_key"), t("verify.no_key_detail"));
      this.progress.hidden = true;
      return Promise.resolve(null);
    }
    return new Promise((resolve) => {
      this.worker = new Worker(new URL("./verify/worker.js", import.meta.url), { type: "module" });
      this.worker.onmessage = ({ data }) => {
        if (data.type === "progress") {
          this.progress.hidden = false;
          this.progress.max = Math.max(1, data.total || 1);
          this.progress.value = data.done || 0;
          const phase = `verify.phase.${data.phase}`;
          const counts = { done: formatNumber(data.done || 0), total: formatNumber(data.total || 0) };
          this.detail.textContent = has(phase) ? t(phase, counts) : t("verify.progress", counts);
        } else if (data.type === "result") {
          this.result = { ...data, seconds: (performance.now() - this.startedAt) / 1000 };
          this.report(this.result);
          this.worker.terminate();
          resolve(this.result);
        }
      };
      this.worker.onerror = (event) => {
        this.result = { ok: false, failures: [{ check: "fetch", status: 0, detail: event.message }], verified: {} };
        this.report(this.result);
        this.worker.terminate();
        resolve(this.result);
      };
      this.worker.postMessage(request);
    });
  }

  report(result) {
    this.progress.hidden = true;
    clear(this.failures);
    this.flagged = new Set();
    this.root.dataset.seconds = result.seconds?.toFixed(3) ?? "";
    const state = outcome(result);
    const counts = { entries: formatNumber(result.entries), size: formatNumber(result.treeSize) };
    const notes = [];
    if (result.cosigners?.length) notes.push(t("verify.witnessed", { witnesses: result.cosigners.join(", ") }));
    if (result.pending) notes.push(t("verify.pending", { count: formatNumber(result.pending) }));
    if (state === "verified") {
      const parts = [t("verify.ok_detail", counts)];
      if (result.complete === true) parts.push(t("verify.complete"));
      else parts.push(t("verify.completeness_unavailable")); // an empty signed tree: nothing in it yet
      this.show(state, t("verify.ok"), [...parts, ...notes].join(" "));
    } else if (state === "partial") {
      this.show(state, t("verify.partial"), [t("verify.partial_detail", counts), ...notes].join(" "));
      this.technical([result.completenessProblem]);
    } else if (state === "signin") {
      this.show(state, t("verify.signin"), t("session.expired"));
    } else if (state === "unavailable") {
      this.show(state, t("verify.unavailable"), t("verify.unavailable_detail"));
      this.technical(result.failures.map((failure) => failure.detail));
    } else {
      this.show(state, t("verify.failed"), t("verify.failed_detail"));
      this.list(result.failures);
    }
  }

  list(failures) {
    for (const failure of failures.slice(0, 20)) {
      const where = failure.customer_seq !== undefined ? t("verify.at_entry", { seq: failure.customer_seq }) : "";
      this.failures.append(el("li", { dataset: { check: failure.check } },
        el("strong", {}, t(`verify.check.${failure.check}`)), where ? ` (${where})` : "",
        failure.detail ? el("span", { class: "badge__why" }, `: ${failure.detail}`) : null));
    }
    if (failures.length > 20) {
      this.failures.append(el("li", {}, t("verify.more_failures", { count: failures.length - 20 })));
    }
  }

  /** Why nothing (or not everything) was checked, for whoever helps the customer: small print. */
  technical(details) {
    for (const detail of details.filter(Boolean).slice(0, 3)) {
      this.failures.append(el("li", { class: "badge__technical" }, t("verify.technical", { detail })));
    }
  }

  /** A history row that the verified bytes do not back: the whole page is then not verified. */
  flagShown(item, verdict) {
    this.flagged ??= new Set();
    if (this.flagged.has(item.entry_hash)) return;
    this.flagged.add(item.entry_hash);
    if (this.state !== "failed") {
      clear(this.failures);
      this.show("failed", t("verify.failed"), t("verify.failed_detail"));
    }
    const check = verdict.state === "missing" ? "shown_missing" : "fields";
    this.failures.append(el("li", { dataset: { check } },
      el("strong", {}, t(`verify.check.${check}`)), ` (${t("verify.at_entry", { seq: item.customer_seq })})`,
      verdict.field ? el("span", { class: "badge__why" }, `: ${verdict.field}`) : null));
  }

  show(state, title, detail) {
    this.root.dataset.state = state;
    this.title.textContent = title;
    this.detail.textContent = detail;
    this.retry.hidden = state !== "partial" && state !== "unavailable";
  }
}
