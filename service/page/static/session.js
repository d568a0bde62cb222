// What the host app hands the page in the URL fragment (never sent to any server):
//   #token=<customer JWT>&key=<log verifier key>&policy=<base64url tlog-policy>&lang=de&accent=%23...
// The page takes it out of the address bar at once. The token stays in memory only: a reload, or
// anything that reads this tab's storage, finds no token (the host app opens the page again). The
// settings that are no secret (key, policy, language, theme) are kept in sessionStorage (this tab
// only), so that a reload can tell "your session has ended" from "opened without a sign-in".

const STORE = "seenby.session";
const SETTINGS = ["key", "policy", "lang"];
const THEME = {
  accent: "--seenby-accent",
  background: "--seenby-background",
  surface: "--seenby-surface",
  text: "--seenby-text",
  font: "--seenby-font",
};

/**
 * @returns the session: `token` (from the fragment only, else null), the settings, `policyText`,
 *          and `opened`: whether this tab had opened the page before (a reload, a page restored).
 */
export function readSession(location, storage, history) {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  let stored = {};
  try {
    stored = JSON.parse(storage.getItem(STORE) || "{}") || {};
  } catch {
    stored = {};
  }
  const settings = {};
  for (const name of [...SETTINGS, ...Object.keys(THEME)]) {
    const value = fragment.has(name) ? fragment.get(name) : stored[name];
    if (typeof value === "string") settings[name] = value;
  }
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  const opened = storage.getItem(STORE) !== null;
  storage.setItem(STORE, JSON.stringify(settings)); // never the token (an older page's goes too)
  const session = { ...settings, token: fragment.get("token") || null, opened };
  if (session.policy) session.policyText = decodePolicy(session.policy);
  return session;
}

function decodePolicy(encoded) {
  try {
    const base64 = encoded.replace(/-/g, "+").replace(/_/g, "/");
    return new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
}

/** Theme values become CSS custom properties, only where the browser accepts them as what they claim. */
export function applyTheme(session, root) {
  for (const [name, property] of Object.entries(THEME)) {
    const value = session[name];
    if (!value) continue;
    const valid = name === "font" ? /^[\w\s,"'-]{1,200}$/.test(value) : CSS.supports("color", value);
    if (valid) root.style.setProperty(property, value);
  }
}
