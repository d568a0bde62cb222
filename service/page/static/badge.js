// The verification badge: runs the check in a worker (off the main thread) and says, in plain words,
// whether everything the page shows is in the signed log and complete, or exactly what failed.

import { clear, el } from "./dom.js";
import { formatNumber, has, t } from "./i18n.js";

export class VerificationBadge {
  constructor(elements) {
    this.root = elements.root;
    this.title = elements.title;
    this.detail = elements.detail;
    this.progress = elements.progress;
    this.failures = elements.failures;
    this.worker = null;
    this.startedAt = 0;
    this.result = null;
  }

  /** Run the check; resolves with the worker's result (also kept on `this.result`). */
  run(request) {
    this.worker?.terminate();
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
        const result = { ok: false, failures: [{ check: "fetch", detail: event.message }], verified: {} };
        this.report(result);
        resolve(result);
      };
      this.worker.postMessage(request);
    });
  }

  report(result) {
    this.progress.hidden = true;
    clear(this.failures);
    this.flagged = new Set();
    this.root.dataset.seconds = result.seconds?.toFixed(3) ?? "";
    if (result.ok) {
      const parts = [t("verify.ok_detail", { entries: formatNumber(result.entries), size: formatNumber(result.treeSize) })];
      if (result.complete === true) parts.push(t("verify.complete"));
      else if (result.complete === null) parts.push(t("verify.completeness_unavailable"));
      if (result.cosigners?.length) parts.push(t("verify.witnessed", { witnesses: result.cosigners.join(", ") }));
      if (result.pending) parts.push(t("verify.pending", { count: formatNumber(result.pending) }));
      this.show("verified", t("verify.ok"), parts.join(" "));
      return;
    }
    this.show("failed", t("verify.failed"), t("verify.failed_detail"));
    for (const failure of result.failures.slice(0, 20)) {
      const where = failure.customer_seq !== undefined ? t("verify.at_entry", { seq: failure.customer_seq }) : "";
      this.failures.append(el("li", { dataset: { check: failure.check } },
        el("strong", {}, t(`verify.check.${failure.check}`)), where ? ` (${where})` : "",
        failure.detail ? el("span", { class: "badge__why" }, `: ${failure.detail}`) : null));
    }
    if (result.failures.length > 20) {
      this.failures.append(el("li", {}, t("verify.more_failures", { count: result.failures.length - 20 })));
    }
  }

  /** A history row that the verified bytes do not back: the whole page is then not verified. */
  flagShown(item, verdict) {
    this.flagged ??= new Set();
    if (this.flagged.has(item.entry_hash)) return;
    this.flagged.add(item.entry_hash);
    if (this.root.dataset.state === "verified") {
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
  }
}
