// What the host app hands the page in the URL fragment (never sent to any server):
//   #token=<customer JWT>&key=<log verifier key>&policy=<base64url tlog-policy>&lang=de&accent=%23...
// The page keeps it in sessionStorage (this tab only) and takes it out of the address bar at once.

const STORE = "seenby.session";
const THEME = {
  accent: "--seenby-accent",
  background: "--seenby-background",
  surface: "--seenby-surface",
  text: "--seenby-text",
  font: "--seenby-font",
};

export function readSession(location, storage, history) {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  let session = {};
  try {
    session = JSON.parse(storage.getItem(STORE) || "{}");
  } catch {
    session = {};
  }
  for (const name of ["token", "key", "policy", "lang", ...Object.keys(THEME)]) {
    if (fragment.has(name)) session[name] = fragment.get(name);
  }
  if (session.policy) session.policyText = decodePolicy(session.policy);
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  storage.setItem(STORE, JSON.stringify(session));
  return session;
}

export function forgetSession(storage) {
  storage.removeItem(STORE);
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
