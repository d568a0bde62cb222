// The customer index (CONTRACT "Completeness"): a compact sparse Merkle tree over 256-bit keys,
// as service/ledger/customer_index/tree.py builds and checks it.

import { concat, equal, fromHex, sha256, u64, utf8 } from "./bytes.js";

export const KEY_BITS = 256;
const HASH_SIZE = 32;
const EMPTY = new Uint8Array(HASH_SIZE);
const KEY_DOMAIN = utf8("seenby/customer-index/v1\x00");

export class IndexProofError extends Error {
  /** @param {string} message */
  constructor(message) { super(message); this.name = "IndexProofError"; }
}

/** @param {string} customerId @returns {Promise<Uint8Array>} SHA-256(domain ‖ 0x00 ‖ UTF-8 id) */
export function indexKey(customerId) {
  return sha256(concat(KEY_DOMAIN, utf8(customerId)));
}

/**
 * The head a customer maps to: SHA-256(u64 BE customer_seq ‖ entry hash as 32 raw bytes).
 * @param {number|bigint} customerSeq @param {string} entryHashHex @returns {Promise<Uint8Array>}
 */
export function indexValue(customerSeq, entryHashHex) {
  return sha256(concat(u64(BigInt(customerSeq)), fromHex(entryHashHex)));
}

/** @param {Uint8Array} key @param {Uint8Array} value @returns {Promise<Uint8Array>} */
export function indexLeafHash(key, value) {
  return sha256(concat(new Uint8Array([0]), key, value));
}

/** @param {Uint8Array} left @param {Uint8Array} right @returns {Promise<Uint8Array>} */
function indexNodeHash(left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

/** @param {Uint8Array} key @param {number} depth the key's bit at that depth, from the top */
function bit(key, depth) {
  return (key[depth >> 3] >> (7 - (depth & 7))) & 1;
}

/** Whether two keys share their first `depth` bits (the same node at that depth). */
function samePrefix(a, b, depth) {
  for (let d = 0; d < depth; d++) if (bit(a, d) !== bit(b, d)) return false;
  return true;
}

/**
 * @typedef {{leaf: {key: Uint8Array, value: Uint8Array}|null, siblings: Uint8Array[]}} Lookup
 * Check `proof` for `key` against `root`: the key's value when it is present, null when the
 * proof shows it absent (another key's leaf on its path, or an empty subtree).
 * @param {Uint8Array} root @param {Uint8Array} key @param {Lookup} proof
 * @returns {Promise<Uint8Array|null>} IndexProofError when the proof fails
 */
export async function verifyLookup(root, key, proof) {
  const siblings = proof.siblings;
  const depth = siblings.length;
  if (depth > KEY_BITS) throw new IndexProofError(`${depth} siblings: a path has at most ${KEY_BITS}`);
  if (siblings.some((s) => s.length !== HASH_SIZE) || key.length !== HASH_SIZE) {
    throw new IndexProofError("every key and hash is 32 bytes");
  }
  if (depth && equal(siblings[0], EMPTY)) {
    throw new IndexProofError("not compact: the found node's sibling is empty, so it belongs one level up");
  }
  let current;
  if (proof.leaf === null) {
    current = EMPTY;
  } else {
    const { key: leafKey, value } = proof.leaf;
    if (leafKey.length !== HASH_SIZE || value.length !== HASH_SIZE) throw new IndexProofError("every key and hash is 32 bytes");
    if (!samePrefix(leafKey, key, depth)) throw new IndexProofError("the leaf found is not on the key's path");
    current = await indexLeafHash(leafKey, value);
  }
  for (let offset = 0; offset < depth; offset++) {
    const above = depth - 1 - offset;
    current = bit(key, above) ? await indexNodeHash(siblings[offset], current) : await indexNodeHash(current, siblings[offset]);
  }
  if (!equal(current, root)) throw new IndexProofError("the proof does not lead to the index root");
  if (proof.leaf !== null && equal(proof.leaf.key, key)) return proof.leaf.value;
  return null;
}

/**
 * A proof as the API serves it (`{leaf: {key, value} | null, siblings: [hex]}`), checked.
 * @param {Uint8Array} root @param {Uint8Array} key @param {any} proof
 * @returns {Promise<{status: "found"|"absent"|"empty", value: Uint8Array|null}>}
 *   found: the key's own leaf; absent: another key's leaf on its path; empty: an empty subtree
 */
export async function verifyIndexProof(root, key, proof) {
  let lookup;
  try {
    const leaf = proof.leaf === null ? null : { key: fromHex(proof.leaf.key), value: fromHex(proof.leaf.value) };
    if (!Array.isArray(proof.siblings)) throw new TypeError("no siblings");
    lookup = { leaf, siblings: proof.siblings.map(fromHex) };
  } catch {
    throw new IndexProofError("the index proof is not {leaf, siblings} in hex");
  }
  const value = await verifyLookup(root, key, lookup);
  if (value !== null) return { status: "found", value };
  return { status: lookup.leaf === null ? "empty" : "absent", value: null };
}
