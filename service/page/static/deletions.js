// Deletion requests: file one for a clip or for everything, and follow each service's task.

import { explain } from "./api.js";
import { clear, el } from "./dom.js";
import { formatDate, t, word } from "./i18n.js";

export class DeletionsView {
  constructor(api, elements, report) {
    this.api = api;
    this.list = elements.list;
    this.form = elements.form;
    this.report = report;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.file();
    });
  }

  async load() {
    const page = await this.api.get(this.api.customerPath("/deletion-requests"), { limit: 100 });
    clear(this.list);
    if (!page.items.length) this.list.append(el("li", { class: "muted" }, t("deletions.none")));
    for (const request of page.items) this.list.append(this.render(request));
  }

  render(request) {
    const what = request.scope === "all"
      ? t("deletions.for_all")
      : t("deletions.for_clips", { clips: request.clip_ids.join(", ") });
    const done = request.tasks.filter((task) => task.status === "completed").length;
    return el("li", { class: "card list__item list__item--column", dataset: { request: request.id } },
      el("div", { class: "list__row" },
        el("strong", {}, what),
        el("span", { class: `status status--${request.overdue ? "overdue" : request.status}` },
          request.overdue ? t("deletions.overdue") : word("deletion_status", request.status))),
      el("p", { class: "muted" }, t("deletions.filed", {
        filed: formatDate(request.filed_at), due: formatDate(request.due_at),
      })),
      request.reason ? el("p", {}, t("deletions.rejected_because", { reason: request.reason })) : null,
      request.tasks.length
        ? el("details", {},
          el("summary", {}, t("deletions.tasks", { done, total: request.tasks.length })),
          el("ul", { class: "tasks" }, request.tasks.map((task) => el("li", {},
            el("span", {}, task.service), " — ",
            el("span", {}, task.status === "completed"
              ? t("deletions.task_done", { when: formatDate(task.completed_at) })
              : t("deletions.task_pending")),
            task.evidence ? el("q", {}, task.evidence) : null))))
        : null);
  }

  async file() {
    const data = new FormData(this.form);
    const body = data.get("scope") === "all"
      ? { scope: "all" }
      : { clip_ids: [String(data.get("clip_id") || "").trim()] };
    if (body.clip_ids && !body.clip_ids[0]) {
      this.report(t("deletions.need_clip"), true);
      return;
    }
    try {
      await this.api.post(this.api.customerPath("/deletion-requests"), body);
      this.form.reset();
      this.report(t("deletions.saved"));
      await this.load();
    } catch (error) {
      this.report(explain(error), true);
    }
  }
}
