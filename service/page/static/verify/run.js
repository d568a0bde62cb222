// The whole verification of what the customer page shows, for a module worker (worker.js) or Node:
// the checkpoint (pinned key, witnesses), completeness, and every entry of the customer's chain.
// It never throws: whatever goes wrong is a failure in the result.

import { fromHex } from "./bytes.js";
import { ChainLinks, checkItem } from "./chain.js";
import { checkHead, checkIndex, CompletenessError } from "./completeness.js";
import { InclusionChecker, leafHash } from "./merkle.js";
import { checkWitnesses, openCheckpoint, parseCheckpoint, parsePolicy, parseVerifierKey, splitNote } from "./note.js";

const PAGE = 500;
const MAX_FAILURES = 500;

/**
 * @typedef {{apiBase: string, token: string, verifierKey: string, policy: string|null,
 *            customerId: string}} Input
 * A failure of check "fetch" is no mismatch: the check could not get what it needs (`status`: the
 * HTTP status, or 0 without an answer; 401 and 403 mean the token was refused). Every other check
 * names something that does not match.
 * @typedef {{check: string, customer_seq?: number, entry_hash?: string, detail: string,
 *            status?: number}} Failure
 * @typedef {{type: "progress", phase: string, done: number, total: number|null}} Progress
 * `complete`: true when the completeness proof holds, false when it fails, null when it was not
 * checked; then `completenessProblem` says why if the log should have had one (every signed tree
 * that holds entries commits to the customer index), and is null for an empty signed tree.
 * @typedef {{type: "result", ok: boolean, treeSize: number|null, entries: number, pending: number,
 *            complete: boolean|null, completenessProblem: string|null, cosigners: string[],
 *            failures: Failure[], verified: Record<string, string>, pendingHashes: string[]}} Result
 */

class FetchError extends Error {
  /** @param {string} message @param {number} status the HTTP status; 0 for no (readable) answer */
  constructor(message, status = 0) { super(message); this.name = "FetchError"; this.status = status; }
}

/** seenby answered, but not with something a seenby sends: an unreadable body, a proof without its
 * checkpoint, a page without items, pages in a loop. A mismatch (check "malformed"), not an outage. */
class Malformed extends Error {
  constructor(message) { super(message); this.name = "Malformed"; }
}

const message = (error) => (error instanceof Error ? error.message : String(error));

/** GETs against seenby with the customer's token in the Authorization header, never in a URL. */
function client(apiBase, token) {
  const base = String(apiBase).replace(/\/+$/, "");
  return async (path, { allow = [], text = false } = {}) => {
    let response;
    try {
      response = await fetch(base + path, {
        headers: { Authorization: `Bearer ${token}`, Accept: text ? "text/plain" : "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      throw new FetchError(`GET ${path.split("?")[0]} failed: ${message(error)}`, 0);
    }
    if (allow.includes(response.status)) return { status: response.status, body: null };
    if (response.status !== 200) {
      throw new FetchError(`GET ${path.split("?")[0]} answered ${response.status}`, response.status);
    }
    try {
      return { status: 200, body: text ? await response.text() : await response.json() };
    } catch (error) {
      throw new Malformed(`GET ${path.split("?")[0]} sent an unreadable answer: ${message(error)}`);
    }
  };
}

/**
 * @param {Input} input
 * @param {(progress: Progress) => void} [post] progress reports
 * @returns {Promise<Result>}
 */
export async function run(input, post = () => {}) {
  /** @type {Failure[]} */
  const failures = [];
  let dropped = 0;
  const fail = (failure) => {
    if (failures.length < MAX_FAILURES) failures.push(failure);
    else dropped++;
  };
  const result = { type: "result", ok: false, treeSize: null, entries: 0, pending: 0, complete: null,
                   completenessProblem: null, cosigners: [], failures, verified: {}, pendingHashes: [] };
  try {
    await verify(input, post, fail, result);
  } catch (error) {
    if (error instanceof FetchError) fail({ check: "fetch", detail: error.message, status: error.status });
    else fail({ check: "malformed", detail: message(error) }); // an answer that made the check stop
  }
  if (dropped) failures.push({ check: failures[failures.length - 1].check, detail: `${dropped} more failures not listed` });
  result.ok = failures.length === 0;
  return /** @type {Result} */ (result);
}

async function verify(input, post, fail, result) {
  const get = client(input.apiBase, input.token);
  post({ type: "progress", phase: "checkpoint", done: 0, total: 1 });

  let verifier = null, policy = null;
  try {
    verifier = await parseVerifierKey(String(input.verifierKey ?? "").trim());
  } catch (error) {
    fail({ check: "checkpoint_signature", detail: `the pinned key is not a verifier key: ${message(error)}` });
  }
  if (input.policy) {
    try {
      policy = await parsePolicy(input.policy);
    } catch (error) {
      fail({ check: "cosignatures", detail: `the witness policy cannot be read: ${message(error)}` });
    }
  }

  // 1. The checkpoint, from the completeness proof when there is one. A proof seenby does not
  // send (503 while it has no index yet, a failure on the way) leaves completeness unchecked; a
  // refused token stops everything.
  let proof;
  try {
    proof = await get("/v1/me/completeness", { allow: [404, 503] });
  } catch (error) {
    if (!(error instanceof FetchError) || error.status === 401 || error.status === 403) throw error;
    proof = { status: error.status, body: null, problem: error.message };
  }
  if (proof.status !== 200) proof.problem ??= `GET /v1/me/completeness answered ${proof.status}`;
  const note = proof.status === 200 ? proof.body?.checkpoint : (await get("/v1/log/checkpoint", { text: true })).body;
  if (typeof note !== "string") throw new Malformed("the completeness proof has no checkpoint");
  let checkpoint = null;
  if (verifier) {
    try {
      checkpoint = await openCheckpoint(note, verifier);
    } catch (error) {
      fail({ check: "checkpoint_signature", detail: message(error) });
    }
  }
  if (checkpoint && policy) {
    const witnessed = await checkWitnesses(note, policy);
    result.cosigners = [...witnessed.cosigned.keys()];
    for (const { witness, detail } of witnessed.failed) fail({ check: "cosignatures", detail: `${witness}: ${detail}` });
    if (!witnessed.satisfied) {
      fail({ check: "cosignatures", detail: `quorum ${witnessed.quorum} not met: cosigned by `
            + `${result.cosigners.join(", ") || "none"}; missing ${[...witnessed.missing, ...witnessed.failed.map((f) => f.witness)].join(", ") || "none"}` });
    }
  }
  // Without a valid signature the entries are still checked against their bytes and each other,
  // paged against the size the note claims; nothing is checked against its root.
  let size = checkpoint?.size ?? null;
  if (size === null) {
    try {
      size = parseCheckpoint(splitNote(note).text).size;
    } catch {
      size = null;
    }
  }
  result.treeSize = checkpoint?.size ?? null;
  post({ type: "progress", phase: "checkpoint", done: 1, total: 1 });

  // The completeness proof, all but the chain's end.
  let covered = null;
  let completenessFailed = false;
  const completenessFailure = (detail) => {
    completenessFailed = true;
    fail({ check: "completeness", detail });
  };
  if (proof.status === 200 && checkpoint) {
    post({ type: "progress", phase: "completeness", done: 0, total: 1 });
    try {
      covered = await checkIndex(proof.body, checkpoint, input.customerId);
    } catch (error) {
      completenessFailure(error instanceof CompletenessError ? error.message
        : `not a completeness proof as the API serves it (${message(error)})`);
    }
  }
  const headSeq = covered?.head ? covered.head.customer_seq : null;

  // 2. The chain, page by page.
  const checker = checkpoint ? new InclusionChecker(checkpoint.size, checkpoint.root) : null;
  const links = new ChainLinks();
  let headEntry;
  let cursor = null;
  const cursors = new Set();
  let done = 0;
  const pageOf = (after) => {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (size) query.set("tree_size", String(size));
    if (after) query.set("cursor", after);
    return get(`/v1/me/entries?${query}`);
  };
  let next = pageOf(null);
  do {
    const page = (await next).body;
    if (!page || !Array.isArray(page.items)) throw new Malformed("GET /v1/me/entries sent no items");
    const items = page.items;
    // The next page is on its way while this one is hashed: the server's time and ours overlap.
    const following = page.next_cursor ?? null;
    if (typeof following === "string" && !cursors.has(following)) {
      next = pageOf(following);
      next.catch(() => {}); // awaited on the next turn; a failure surfaces there
    }
    const checked = await Promise.all(items.map(checkItem));
    const wanted = [];
    const state = items.map((item, i) => {
      const entry = checked[i];
      const seq = entry.recorded?.customer_seq ?? item.customer_seq;
      const where = { customer_seq: seq, entry_hash: entry.entryHash ?? item.entry_hash };
      const faults = [...entry.faults];
      if (entry.recorded) {
        for (const detail of links.follow(entry.recorded, entry.entryHash)) fail({ check: "chain", ...where, detail });
        if (seq === headSeq) headEntry = { entryHash: entry.entryHash, canonical: entry.canonical };
      }
      const logIndex = item.log_index;
      const inTree = Number.isSafeInteger(logIndex) && logIndex >= 0 && size !== null && logIndex < size;
      if (logIndex !== null && !(Number.isSafeInteger(logIndex) && logIndex >= 0)) faults.push({ check: "inclusion", detail: "log_index is not a number" });
      else if (inTree && checker && entry.canonical) {
        if (!Array.isArray(item.inclusion)) faults.push({ check: "inclusion", detail: "no inclusion proof served" });
        else wanted.push({ i, index: logIndex, proof: item.inclusion });
      }
      return { where, faults, pending: !inTree, entry, logIndex, included: false };
    });
    if (wanted.length) {
      const leaves = await Promise.all(wanted.map(({ i }) => leafHash(state[i].entry.canonical)));
      const requests = wanted.map((want, k) => {
        try {
          return { index: want.index, leaf: leaves[k], proof: want.proof.map(fromHex) };
        } catch {
          return { index: want.index, leaf: leaves[k], proof: null };
        }
      });
      const errors = await checker.checkMany(requests);
      wanted.forEach(({ i }, k) => {
        if (errors[k] !== null) state[i].faults.push({ check: "inclusion", detail: errors[k] });
        else state[i].included = true;
      });
    }
    for (const { where, faults, pending, entry, logIndex, included } of state) {
      for (const fault of faults) fail({ ...fault, ...where });
      if (pending) {
        result.pending++;
        if (entry.entryHash) result.pendingHashes.push(entry.entryHash);
      }
      if (!faults.length && entry.text !== null && (included || pending)) result.verified[entry.entryHash] = entry.text;
      // An entry past the head that is in the log below what the index covers contradicts it.
      if (covered && included && (headSeq === null || where.customer_seq > headSeq) && logIndex < covered.covers) {
        completenessFailure(`entry customer_seq ${where.customer_seq} is in the log below ${covered.covers}, past the index's head`);
      }
    }
    done += items.length;
    result.entries = done;
    cursor = page.next_cursor ?? null;
    if (cursor !== null && (typeof cursor !== "string" || cursors.has(cursor))) throw new Malformed("GET /v1/me/entries pages in a loop");
    cursors.add(cursor);
    post({ type: "progress", phase: "entries", done, total: cursor ? (headSeq !== null ? Math.max(done, headSeq + 1) : null) : done });
  } while (cursor);

  // The chain ends at the head.
  if (covered && !completenessFailed) {
    try {
      if (covered.head) await checkHead(covered.head, done, headEntry, checkpoint);
    } catch (error) {
      completenessFailure(message(error));
    }
    post({ type: "progress", phase: "completeness", done: 1, total: 1 });
  }
  result.complete = completenessFailed ? false : covered ? true : null;
  // Every signed tree that holds entries holds an index leaf too (CONTRACT "Completeness"): only
  // an empty one has nothing to prove. Anything else unchecked is a gap the badge must not hide.
  // Entries beyond an empty signed tree (pending) are unchecked too: an old, empty checkpoint
  // served again must not pass for "nothing to prove".
  if (result.complete === null && proof.problem && checkpoint && (checkpoint.size > 0 || result.pending > 0)) {
    result.completenessProblem = proof.problem;
  }
}
