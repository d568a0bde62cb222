// The history: accesses and refused attempts, newest first, a page at a time as the reader scrolls.

import { clear, countryName, el } from "./dom.js";
import { formatDate, formatTime, language, t, word } from "./i18n.js";
import { checkShown } from "./shown.js";

const PAGE = 50;
// Recorded this long after (or before) it happened: the row says both.
const NOTABLY = 60 * 60 * 1000;
// Flags that ask for the customer's attention (the "only what needs your attention" filter).
const ATTENTION = new Set(["unconsented", "access_after_deletion", "authorization_invalid", "needs_review"]);

export class HistoryView {
  constructor(api, elements, onObject, onMismatch = () => {}, onError = () => {}) {
    this.api = api;
    this.list = elements.list;
    this.end = elements.end;
    this.sentinel = elements.sentinel;
    this.form = elements.form;
    this.stale = elements.stale; // says the rows are for filters other than those the form shows
    this.onObject = onObject;
    this.onMismatch = onMismatch; // (item, verdict): a shown row the verified bytes do not back
    this.onError = onError; // (error): a page of the history could not be loaded
    this.rows = new Map(); // entry_hash -> {item, element}
    this.objected = new Set();
    this.verified = null; // entry_hash -> canonical JSON text, once the check has run
    this.unchecked = false; // the check could not run: rows say so instead of "Checking…"
    this.applied = this.filters(); // the filters the rows shown were loaded with
    this.cursor = undefined;
    this.loading = null;
    this.generation = 0;
    this.observer = new IntersectionObserver((seen) => {
      if (seen.some((entry) => entry.isIntersecting)) this.more()?.catch((error) => this.onError(error));
    }, { rootMargin: "600px" });
    this.observer.observe(this.sentinel);
    this.form.addEventListener("input", () => this.restart());
    this.form.addEventListener("submit", (event) => event.preventDefault());
  }

  filters() {
    const data = new FormData(this.form);
    return {
      clip_id: (data.get("clip_id") || "").trim(),
      purpose: data.get("purpose") || "",
      actor_type: data.get("actor_type") || "",
      flagged: data.get("flagged") === "on",
    };
  }

  /**
   * The filters changed: the first rows for them replace what is shown once they are loaded. If they
   * cannot be, what was shown stays (with the filters it was loaded with) and `onError` says why.
   */
  restart() {
    const generation = ++this.generation;
    const filters = this.filters();
    return this.track(generation, async () => {
      try {
        const { items, cursor } = await this.fetchVisible(filters, undefined, generation);
        if (generation !== this.generation) return;
        this.applied = filters;
        this.stale.hidden = true;
        this.cursor = cursor;
        this.rows.clear();
        clear(this.list);
        this.end.textContent = "";
        this.add(items);
      } catch (error) {
        if (generation !== this.generation) return;
        this.stale.hidden = false;
        this.onError(error);
      }
    });
  }

  /** seenby can be reached again: load what could not be loaded (the first rows, a filter change). */
  retry() {
    if (!this.stale.hidden || (!this.rows.size && this.cursor !== null)) this.restart();
  }

  /** The next rows for the filters shown; rejects if they cannot be loaded (nothing shown changes). */
  more() {
    if (this.loading || this.cursor === null) return this.loading;
    const generation = this.generation;
    return this.track(generation, async () => {
      const { items, cursor } = await this.fetchVisible(this.applied, this.cursor, generation);
      if (generation !== this.generation) return;
      this.cursor = cursor;
      this.add(items);
    });
  }

  /** `work` as the list's one load, the list busy until it ends (unless the filters changed since). */
  track(generation, work) {
    this.list.setAttribute("aria-busy", "true");
    this.loading = (async () => {
      try {
        await work();
      } finally {
        if (generation === this.generation) {
          this.loading = null;
          this.list.setAttribute("aria-busy", "false");
          this.showEnd();
        }
      }
    })();
    return this.loading;
  }

  /** Pages until one has a row the filters show (the flagged filter hides rows), or there are no more. */
  async fetchVisible(filters, cursor, generation) {
    const { flagged, ...query } = filters;
    const items = [];
    do {
      const page = await this.api.get("/v1/me/accesses", { ...query, limit: PAGE, cursor });
      if (generation !== this.generation) break;
      cursor = page.next_cursor;
      items.push(...page.items.filter((item) => !flagged || item.flags.some((flag) => ATTENTION.has(flag))));
    } while (!items.length && cursor !== null);
    return { items, cursor };
  }

  add(items) {
    for (const item of items) {
      if (this.rows.has(item.entry_hash)) continue;
      const element = this.renderRow(item);
      this.rows.set(item.entry_hash, { item, element });
      this.list.append(element);
      this.mark(item.entry_hash);
    }
  }

  showEnd() {
    if (this.cursor !== null) return;
    const filtered = Object.values(this.applied).some(Boolean);
    this.end.textContent = this.rows.size ? t("history.end") : t(filtered ? "history.none_matching" : "history.empty");
  }

  /** A new entry from the live stream: on top, if the filters let it through. */
  prepend(item) {
    if (item.kind !== "access" && item.kind !== "access_refused") return;
    if (this.rows.has(item.entry_hash) || !this.passes(item)) return;
    const element = this.renderRow(item);
    element.classList.add("entry--new");
    this.rows.set(item.entry_hash, { item, element });
    this.list.prepend(element);
    this.mark(item.entry_hash);
  }

  passes(item) {
    const f = this.applied;
    return (!f.clip_id || item.clip_id === f.clip_id) && (!f.purpose || item.purpose === f.purpose)
      && (!f.actor_type || item.actor?.type === f.actor_type)
      && (!f.flagged || item.flags.some((flag) => ATTENTION.has(flag)));
  }

  setObjected(entryHashes) {
    for (const hash of entryHashes) {
      this.objected.add(hash);
      const row = this.rows.get(hash);
      if (row) row.element.replaceWith(row.element = this.renderRow(row.item));
      if (row) this.mark(hash);
    }
  }

  /** The browser check's result: every shown row is compared with the verified canonical bytes. */
  setVerified(verified) {
    this.verified = verified;
    this.unchecked = false;
    for (const hash of this.rows.keys()) this.mark(hash);
  }

  /** The check could not run (seenby unreachable, the session ended): no row is called checked. */
  setUnchecked() {
    this.verified = null;
    this.unchecked = true;
    for (const hash of this.rows.keys()) this.mark(hash);
  }

  mark(hash) {
    const row = this.rows.get(hash);
    if (!row) return;
    const status = row.element.querySelector(".entry__check");
    const idle = { state: this.unchecked ? "unchecked" : "checking" };
    const verdict = this.verified ? checkShown(row.item, this.verified) : idle;
    row.element.dataset.check = verdict.state;
    if (verdict.state === "failed" || verdict.state === "missing") this.onMismatch(row.item, verdict);
    status.textContent = t(`check.${verdict.state}`, { field: verdict.field || "" });
  }

  renderRow(item) {
    const refused = item.kind === "access_refused";
    const actor = item.actor || {};
    const lang = language();
    const who = actor.type === "human"
      ? t("who.human", { pseudonym: shortPseudonym(actor.pseudonym), role: actor.role })
      : t("who.algorithm", { role: actor.role, id: actor.id || "", version: actor.version || "" });
    const where = [actor.organization, countryName(actor.country, lang)].filter(Boolean).join(", ");
    const media = (item.media || []).map((m) => word("media", m)).join(", ");
    const flags = item.flags.map((flag) => el("li", { class: `flag flag--${ATTENTION.has(flag) ? "attention" : "info"}` },
      word("flag", flag)));
    const canObject = item.kind === "access";
    const objected = this.objected.has(item.entry_hash);
    return el("li", { class: `entry${refused ? " entry--refused" : ""}`, dataset: { hash: item.entry_hash } },
      el("div", { class: "entry__head" },
        el("span", { class: `entry__icon entry__icon--${actor.type || "unknown"}`, "aria-hidden": "true" }),
        el("p", { class: "entry__who" }, el("strong", { title: actor.pseudonym || null }, who), where ? el("span", {}, ` · ${where}`) : null),
        when(item)),
      refused ? el("p", { class: "entry__refused" }, t("history.refused")) : null,
      el("p", { class: "entry__what" },
        refused
          ? t("what.tried", { verb: word("verb", item.action), clip: item.clip_id })
          : t("what.did", { action: word("action", item.action), clip: item.clip_id }),
        media ? el("span", { class: "entry__media" }, ` (${media})`) : null),
      el("p", { class: "entry__why" }, el("span", {}, `${t("history.why")} ${word("purpose", item.purpose)}`),
        item.justification ? el("q", { class: "entry__justification" }, item.justification) : null),
      flags.length ? el("ul", { class: "entry__flags", "aria-label": t("history.flags") }, flags) : null,
      el("div", { class: "entry__foot" },
        el("span", { class: "entry__check", role: "status" }),
        canObject && !objected
          ? el("button", { type: "button", class: "link", onclick: () => this.onObject(item) }, t("objection.open"))
          : null,
        objected ? el("span", { class: "entry__objected" }, t("objection.filed")) : null));
  }
}

/**
 * When it happened, and when seenby recorded it if that was notably later (or earlier): the list
 * is in recording order, so a late record would otherwise read as a date out of order.
 */
function when(item) {
  const happened = Date.parse(item.occurred_at);
  const recorded = Date.parse(item.recorded_at);
  const apart = Number.isFinite(happened) && Number.isFinite(recorded) && Math.abs(recorded - happened) >= NOTABLY;
  if (!apart) {
    const at = item.occurred_at || item.recorded_at;
    return el("time", { class: "entry__when", datetime: at }, formatDate(at));
  }
  const sameDay = new Date(happened).toDateString() === new Date(recorded).toDateString();
  return el("span", { class: "entry__when" },
    el("time", { datetime: item.occurred_at }, t("history.happened", { when: formatDate(item.occurred_at) })),
    " · ",
    el("time", { class: "entry__recorded", datetime: item.recorded_at },
      t("history.recorded", { when: sameDay ? formatTime(item.recorded_at) : formatDate(item.recorded_at) })));
}

/** "psn_cab2d564d558..." -> "cab2d564": enough to tell people apart at a glance; the full one is its title. */
function shortPseudonym(pseudonym) {
  return pseudonym ? pseudonym.replace(/^psn_/, "").slice(0, 8) : "?";
}
