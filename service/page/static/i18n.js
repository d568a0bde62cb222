// Message catalogues: i18n/<lang>.json, a flat map of keys to text with {name} placeholders.
// A host app picks the language with #lang=de; another language is one more file in i18n/.

export const LANGUAGES = ["en", "de"];
let messages = {};
let fallback = {};
let current = "en";

async function load(lang) {
  const response = await fetch(`i18n/${lang}.json`);
  if (!response.ok) throw new Error(`no catalogue for ${lang}`);
  return response.json();
}

export async function setLanguage(wanted) {
  fallback = await load("en");
  const lang = LANGUAGES.includes(wanted) ? wanted : "en";
  messages = lang === "en" ? fallback : await load(lang);
  current = lang;
  document.documentElement.lang = lang;
  translateTree(document);
}

export function language() {
  return current;
}

/** The text for `key`, with {placeholders} filled from `values`; the key itself if unknown. */
export function t(key, values = {}) {
  const text = messages[key] ?? fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in values ? String(values[name]) : match));
}

/** Whether the catalogue knows `key` (vocabulary values fall back to the raw value otherwise). */
export function has(key) {
  return key in messages || key in fallback;
}

/** A vocabulary value in words: purpose.model_training, action.view, ...; the value itself if unknown. */
export function word(group, value) {
  return has(`${group}.${value}`) ? t(`${group}.${value}`) : value;
}

export function translateTree(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-aria-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nAriaLabel));
  }
}

export function formatDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : new Intl.DateTimeFormat(current, {
    dateStyle: "medium", timeStyle: "short",
  }).format(date);
}

export function formatNumber(n) {
  return new Intl.NumberFormat(current).format(n);
}

/** The time of day only, for a second time on the same day as the first. */
export function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : new Intl.DateTimeFormat(current, { timeStyle: "short" }).format(date);
}
