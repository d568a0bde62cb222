// Pictures of the history: accesses by purpose, organization, country and month, drawn as SVG from
// the entries the browser has verified (so a picture never shows what the check did not see).

import { clear, countryName, el } from "./dom.js";
import { formatNumber, language, t, word } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const TOP = 8; // bars per chart; the rest are summed as "other"
const MONTHS = 12;

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

export function tally(accesses) {
  const counts = { purpose: new Map(), organization: new Map(), country: new Map(), month: new Map() };
  const add = (map, key) => map.set(key, (map.get(key) || 0) + 1);
  for (const access of accesses) {
    add(counts.purpose, access.purpose);
    add(counts.organization, access.actor?.organization || "");
    add(counts.country, access.actor?.country || "");
    add(counts.month, (access.occurred_at || "").slice(0, 7));
  }
  return counts;
}

function ranked(map) {
  const rows = [...map.entries()].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
  if (rows.length <= TOP) return rows;
  const other = rows.slice(TOP - 1).reduce((sum, [, n]) => sum + n, 0);
  return [...rows.slice(0, TOP - 1), [null, other]];
}

function lastMonths(map) {
  const now = new Date();
  const months = [];
  for (let back = MONTHS - 1; back >= 0; back -= 1) {
    const date = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 1));
    const key = date.toISOString().slice(0, 7);
    months.push([key, map.get(key) || 0, date]);
  }
  return months;
}

function barChart(title, rows, label) {
  const max = Math.max(1, ...rows.map(([, n]) => n));
  const rowHeight = 28;
  const height = rows.length * rowHeight + 4;
  const description = rows.map(([key, n]) => `${label(key)}: ${formatNumber(n)}`).join("; ");
  const chart = svg("svg", { viewBox: `0 0 400 ${height}`, role: "img", "aria-label": `${title}: ${description}`,
    class: "chart__svg", preserveAspectRatio: "xMinYMin meet" });
  rows.forEach(([key, n], i) => {
    const y = i * rowHeight + 2;
    const width = Math.max(2, (n / max) * 220);
    chart.append(
      svg("text", { x: 0, y: y + 17, class: "chart__label" }, truncate(label(key), 22)),
      svg("rect", { x: 150, y: y + 4, width, height: rowHeight - 10, rx: 3, class: "chart__bar" }),
      svg("text", { x: 150 + width + 6, y: y + 17, class: "chart__value" }, formatNumber(n)),
    );
  });
  return chart;
}

function monthChart(title, months) {
  const max = Math.max(1, ...months.map(([, n]) => n));
  const lang = language();
  const monthName = new Intl.DateTimeFormat(lang, { month: "short", timeZone: "UTC" });
  const description = months.map(([, n, date]) => `${monthName.format(date)}: ${formatNumber(n)}`).join("; ");
  const chart = svg("svg", { viewBox: "0 0 400 170", role: "img", "aria-label": `${title}: ${description}`,
    class: "chart__svg" });
  const step = 400 / months.length;
  months.forEach(([, n, date], i) => {
    const barHeight = n ? Math.max(2, (n / max) * 120) : 0;
    const x = i * step + 4;
    chart.append(
      svg("rect", { x, y: 135 - barHeight, width: step - 8, height: barHeight, rx: 3, class: "chart__bar" }),
      svg("text", { x: x + (step - 8) / 2, y: 152, class: "chart__axis", "text-anchor": "middle" },
        monthName.format(date)),
      n ? svg("text", { x: x + (step - 8) / 2, y: 130 - barHeight, class: "chart__value", "text-anchor": "middle" },
        formatNumber(n)) : "",
    );
  });
  return chart;
}

function truncate(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

export function renderCharts(container, accesses) {
  clear(container);
  if (!accesses.length) {
    container.append(el("p", { class: "muted" }, t("charts.empty")));
    return;
  }
  const counts = tally(accesses);
  const lang = language();
  const other = t("charts.other");
  const unknown = t("charts.unknown");
  const cards = [
    ["charts.by_purpose", barChart(t("charts.by_purpose"), ranked(counts.purpose),
      (key) => (key === null ? other : word("purpose", key)))],
    ["charts.by_organization", barChart(t("charts.by_organization"), ranked(counts.organization),
      (key) => (key === null ? other : key || unknown))],
    ["charts.by_country", barChart(t("charts.by_country"), ranked(counts.country),
      (key) => (key === null ? other : countryName(key, lang) || unknown))],
    ["charts.by_month", monthChart(t("charts.by_month"), lastMonths(counts.month))],
  ];
  container.append(el("p", { class: "muted" }, t("charts.source", { count: formatNumber(accesses.length) })));
  for (const [key, chart] of cards) {
    container.append(el("figure", { class: "card chart" }, el("figcaption", {}, t(key)), chart));
  }
}
