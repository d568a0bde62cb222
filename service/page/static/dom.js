// Building elements from data. Everything a service recorded goes in as text, never as markup.

export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

let regionNames = null;
let regionLanguage = null;

/** A country's name in the page's language ("IN" -> "India"), or the code itself. */
export function countryName(code, lang) {
  if (!code) return "";
  try {
    if (regionLanguage !== lang) {
      regionNames = new Intl.DisplayNames([lang], { type: "region" });
      regionLanguage = lang;
    }
    return regionNames.of(code) || code;
  } catch {
    return code;
  }
}
