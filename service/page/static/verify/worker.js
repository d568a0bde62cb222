// Module worker: `new Worker(new URL("./verify/worker.js", import.meta.url), {type: "module"})`.
// Post it {apiBase, token, verifierKey, policy, customerId}; it posts {type: "progress", ...}
// messages and then one {type: "result", ...} (see run.js).

import { run } from "./run.js";

self.onmessage = async (event) => {
  let result;
  try {
    result = await run(event.data, (progress) => self.postMessage(progress));
  } catch (error) {
    result = { type: "result", ok: false, treeSize: null, entries: 0, pending: 0, complete: null,
               completenessProblem: null, cosigners: [],
               failures: [{ check: "malformed",
                            detail: `verification stopped: ${error instanceof Error ? error.message : error}` }],
               verified: {}, pendingHashes: [] };
  }
  self.postMessage(result);
};
