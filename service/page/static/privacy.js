// What the customer allows: the two consent switches and troubleshooting grants for single clips.

import { explain } from "./api.js";
import { clear, el } from "./dom.js";
import { formatDate, t } from "./i18n.js";

const SWITCHES = ["human_review", "model_training"];

export class PrivacyView {
  constructor(api, elements, report) {
    this.api = api;
    this.grants = elements.grants;
    this.form = elements.grantForm;
    this.report = report; // (message, isError) -> void
    for (const name of SWITCHES) {
      document.getElementById(`consent-${name}`).addEventListener("change", (event) => this.change(name, event.target));
    }
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.grant();
    });
  }

  async load() {
    const consent = await this.api.get(this.api.customerPath("/consent"));
    for (const name of SWITCHES) document.getElementById(`consent-${name}`).checked = Boolean(consent[name]);
    await this.loadGrants();
  }

  async change(name, input) {
    const consent = Object.fromEntries(SWITCHES.map((n) => [n, document.getElementById(`consent-${n}`).checked]));
    input.disabled = true;
    try {
      const saved = await this.api.put(this.api.customerPath("/consent"), consent);
      for (const n of SWITCHES) document.getElementById(`consent-${n}`).checked = Boolean(saved[n]);
      this.report(t("consent.saved"));
    } catch (error) {
      input.checked = !input.checked;
      this.report(explain(error), true);
    } finally {
      input.disabled = false;
    }
  }

  async loadGrants() {
    const page = await this.api.get(this.api.customerPath("/troubleshooting-grants"), { limit: 100 });
    clear(this.grants);
    if (!page.items.length) this.grants.append(el("li", { class: "muted" }, t("grants.none")));
    for (const grant of page.items) this.grants.append(this.renderGrant(grant));
  }

  renderGrant(grant) {
    const live = grant.status === "live";
    return el("li", { class: "card list__item" },
      el("div", {},
        el("strong", {}, t("grants.for_clip", { clip: grant.clip_id })),
        el("p", { class: "muted" }, live
          ? t("grants.until", { when: formatDate(grant.expires_at) })
          : t(`grants.${grant.status}`)),
        grant.note ? el("p", {}, grant.note) : null),
      live ? el("button", { type: "button", onclick: () => this.withdraw(grant) }, t("grants.withdraw")) : null);
  }

  async grant() {
    const data = new FormData(this.form);
    const body = { clip_id: String(data.get("clip_id")).trim() };
    const note = String(data.get("note") || "").trim();
    if (note) body.note = note;
    try {
      await this.api.post(this.api.customerPath("/troubleshooting-grants"), body);
      this.form.reset();
      this.report(t("grants.saved", { clip: body.clip_id }));
      await this.loadGrants();
    } catch (error) {
      this.report(explain(error), true);
    }
  }

  async withdraw(grant) {
    try {
      await this.api.post(this.api.customerPath(`/troubleshooting-grants/${encodeURIComponent(grant.id)}/withdraw`));
      this.report(t("grants.withdrawn_saved", { clip: grant.clip_id }));
      await this.loadGrants();
    } catch (error) {
      this.report(explain(error), true);
    }
  }
}
