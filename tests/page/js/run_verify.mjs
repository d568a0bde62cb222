// Runs verify/run.js in Node against a seenby, the way the page's worker does.
// Usage: node run_verify.mjs <input.json>; the file holds run.js's input plus, for tests:
//   tamper: a name from TAMPERS below, applied to what seenby answers before the library sees it;
//   completeness: a completeness document to answer instead of seenby's;
//   cosignatures: lines appended to the completeness document's checkpoint.
// Prints {"result": <the result message>, "progress": [<the progress messages>]}.

import { readFileSync } from "node:fs";

const { run } = await import(new URL("../../../service/page/static/verify/run.js", import.meta.url));

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { tamper, completeness, cosignatures, viaWorker, ...request } = input;

const flipBase64 = (text) => {
  const bytes = Buffer.from(text, "base64");
  bytes[bytes.length - 2] ^= 1;
  return bytes.toString("base64");
};
const flipHex = (hex) => (hex[0] === "0" ? "1" : "0") + hex.slice(1);

const TAMPERS = {
  field: (path, body) => { if (path.startsWith("/v1/me/entries")) body.items[0].clip_id = "clip-other"; },
  entry: (path, body) => { if (path.startsWith("/v1/me/entries")) body.items[0].entry.clip_id = "clip-other"; },
  canonical: (path, body) => { if (path.startsWith("/v1/me/entries")) body.items[0].canonical = flipBase64(body.items[0].canonical); },
  drop: (path, body) => { if (path.startsWith("/v1/me/entries")) body.items.splice(1, 1); },
  inclusion: (path, body) => { if (path.startsWith("/v1/me/entries")) body.items[0].inclusion[0] = flipHex(body.items[0].inclusion[0]); },
  head: (path, body) => { if (path === "/v1/me/completeness") body.head.entry_hash = flipHex(body.head.entry_hash); },
  index_proof: (path, body) => { if (path === "/v1/me/completeness") body.proof.siblings[0] = flipHex(body.proof.siblings[0]); },
  no_items: (path, body) => { if (path.startsWith("/v1/me/entries")) body.items = null; },
  no_checkpoint: (path, body) => { if (path === "/v1/me/completeness") delete body.checkpoint; },
};
// Tampers that answer instead of seenby.
const EARLY = {
  unavailable: (path) => (path === "/v1/me/completeness" ? new Response("{}", { status: 503 }) : undefined),
  network: (path) => { if (path.startsWith("/v1/me/entries")) throw new TypeError("fetch failed"); },
  completeness_network: (path) => { if (path === "/v1/me/completeness") throw new TypeError("fetch failed"); },
  unreadable: (path) => (path.startsWith("/v1/me/entries")
    ? new Response("{not json", { status: 200, headers: { "content-type": "application/json" } }) : undefined),
};

const realFetch = globalThis.fetch;
const seen = [];
globalThis.fetch = async (url, options) => {
  const path = new URL(url).pathname + new URL(url).search;
  const bare = new URL(url).pathname;
  seen.push({ path, authorization: options?.headers?.Authorization ?? null });
  const early = EARLY[tamper]?.(bare);
  if (early instanceof Response) return early;
  if (bare === "/v1/me/completeness" && completeness) {
    const document = structuredClone(completeness);
    if (cosignatures) document.checkpoint += cosignatures.join("");
    TAMPERS[tamper]?.(bare, document);
    return new Response(JSON.stringify(document), { status: 200, headers: { "content-type": "application/json" } });
  }
  const response = await realFetch(url, options);
  if (!TAMPERS[tamper] || !(response.headers.get("content-type") ?? "").includes("json") || response.status !== 200) return response;
  const body = await response.json();
  TAMPERS[tamper](bare, body);
  return new Response(JSON.stringify(body), { status: response.status, headers: response.headers });
};

const progress = [];
let result;
if (input.viaWorker) {
  // worker.js as a module worker runs it; Node has no `self`, so give it one.
  const messages = [];
  globalThis.self = { postMessage: (message) => messages.push(structuredClone(message)) };
  await import(new URL("../../../service/page/static/verify/worker.js", import.meta.url));
  await globalThis.self.onmessage({ data: request });
  result = messages.pop();
  progress.push(...messages);
} else {
  result = await run(request, (message) => progress.push(message));
}
const tokenInUrl = seen.some(({ path }) => request.token && path.includes(request.token));
const withoutToken = seen.filter(({ authorization }) => authorization !== `Bearer ${request.token}`).map(({ path }) => path);
console.log(JSON.stringify({ result, progress, requests: seen.map(({ path }) => path), tokenInUrl, withoutToken }));
