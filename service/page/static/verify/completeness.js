// A completeness proof (GET /v1/me/completeness) as service/completeness/check.py checks it: the
// index leaf's inclusion and what it covers, the index proof for the customer's key, the head; and
// at the end, that the chain reaches the head and the head is in the log.

import { equal, fromBase64, fromHex, fromUtf8, toHex } from "./bytes.js";
import { indexKey, indexValue, verifyIndexProof } from "./index.js";
import { leafHash, verifyInclusion } from "./merkle.js";

export class CompletenessError extends Error {
  /** @param {string} message */
  constructor(message) { super(message); this.name = "CompletenessError"; }
}

/**
 * @typedef {{customer_seq: number, entry_hash: string, log_index: number, hashes: string[]}} Head
 * @typedef {{covers: number, head: Head|null}} Covered
 */

/** @param {Uint8Array} leaf @param {number} index @param {{size: number, root: Uint8Array}} checkpoint */
async function included(leaf, index, checkpoint, hashes, what) {
  try {
    if (!Array.isArray(hashes)) throw new Error("no proof");
    await verifyInclusion(index, checkpoint.size, leaf, hashes.map(fromHex), checkpoint.root);
  } catch (error) {
    throw new CompletenessError(`${what} (log_index ${index}) is not in the signed tree of size ${checkpoint.size}: `
                                + `${error instanceof Error ? error.message : error}`);
  }
}

/**
 * Everything but the chain: the index leaf (`{kind: "customer_index", covers, root, customers}` at
 * log_index `covers`) in the checkpoint's tree, the proof for the customer's key against its root,
 * and the head the index holds for the customer.
 * @param {any} document @param {{size: number, root: Uint8Array}} checkpoint (verified)
 * @param {string} customerId @returns {Promise<Covered>} CompletenessError naming what failed
 */
export async function checkIndex(document, checkpoint, customerId) {
  const index = document.index;
  const covers = index.log_index;
  const canonical = fromBase64(index.canonical);
  let body, root;
  try {
    body = JSON.parse(fromUtf8(canonical));
    root = fromHex(body.root);
  } catch {
    throw new CompletenessError("the index leaf is not {kind, covers, root, customers}");
  }
  if (body.kind !== "customer_index" || root.length !== 32) throw new CompletenessError("the index leaf is not a customer index leaf");
  if (body.covers !== covers || !Number.isSafeInteger(covers)) {
    throw new CompletenessError(`the index leaf says it covers ${body.covers}, but sits at log_index ${covers}`);
  }
  await included(await leafHash(canonical), covers, checkpoint, index.hashes, "the index leaf");

  const key = await indexKey(customerId);
  if (document.key !== toHex(key)) throw new CompletenessError(`the proof is for key ${document.key}, not the customer's`);
  let found;
  try {
    found = await verifyIndexProof(root, key, document.proof);
  } catch (error) {
    throw new CompletenessError(`the index proof fails: ${error instanceof Error ? error.message : error}`);
  }

  const head = document.head;
  if (head === null) {
    if (found.value !== null) throw new CompletenessError("the index holds a head for the customer, but the proof shows none");
    return { covers, head: null };
  }
  const { customer_seq: seq, entry_hash: headHash, log_index: headIndex } = head;
  if (!Number.isSafeInteger(seq) || seq < 0 || !Number.isSafeInteger(headIndex) || typeof headHash !== "string") {
    throw new CompletenessError("the head's customer_seq, entry_hash or log_index is malformed");
  }
  if (found.value === null) throw new CompletenessError("the proof shows the customer absent from the index, yet gives a head");
  let expected;
  try {
    expected = await indexValue(seq, headHash);
  } catch {
    throw new CompletenessError("the head's entry_hash is not hex");
  }
  if (!equal(found.value, expected)) {
    throw new CompletenessError(`the index holds another head than customer_seq ${seq} (entry ${headHash}): an entry is missing or was changed`);
  }
  if (headIndex >= covers) throw new CompletenessError(`the head's log_index ${headIndex} is not below what the index covers`);
  return { covers, head };
}

/**
 * The chain, checked dense and linked from customer_seq 0 by the caller, reaches the head, whose
 * entry is in the checkpoint's tree at the head's log_index.
 * @param {Head} head @param {number} length the chain's entries
 * @param {{entryHash: string, canonical: Uint8Array}|undefined} shown the chain's entry at the head's seq
 * @param {{size: number, root: Uint8Array}} checkpoint
 */
export async function checkHead(head, length, shown, checkpoint) {
  const seq = head.customer_seq;
  if (seq >= length || shown === undefined) {
    throw new CompletenessError(`the chain ends before the head (customer_seq ${seq}): ${seq + 1 - length} entries are missing`);
  }
  if (shown.entryHash !== head.entry_hash) {
    throw new CompletenessError(`the chain's customer_seq ${seq} is entry ${shown.entryHash}, not the head ${head.entry_hash}`);
  }
  await included(await leafHash(shown.canonical), head.log_index, checkpoint, head.hashes, "the head");
}
