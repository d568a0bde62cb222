// One customer's chain as served by /v1/me/entries: each item against its canonical bytes, and the
// links between items (service/ledger/canonical.py ChainLinks).

import { fromBase64, fromUtf8, sha256, toHex } from "./bytes.js";

export const GENESIS_HASH = "0".repeat(64);

/** Structural equality of JSON values. @param {any} a @param {any} b @returns {boolean} */
export function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((value, i) => deepEqual(value, b[i]));
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.prototype.hasOwnProperty.call(b, key) && deepEqual(a[key], b[key]));
}

/**
 * RFC 8785 (JCS) of a JSON value without floats: keys sorted by UTF-16 code units, strings and
 * integers as JSON.stringify writes them.
 * @param {any} value @returns {string}
 */
export function canonicalize(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalize(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * @typedef {{check: string, detail: string}} Fault
 * @typedef {{entryHash: string|null, canonical: Uint8Array|null, text: string|null,
 *            recorded: Record<string, any>|null, faults: Fault[]}} CheckedItem
 * An item of /v1/me/entries against its canonical bytes: SHA-256 of the bytes is `entry_hash`;
 * the bytes are an RFC 8785 JSON object; `entry` and every field of it shown at top level equal it.
 * @param {any} item @returns {Promise<CheckedItem>}
 */
export async function checkItem(item) {
  /** @type {CheckedItem} */
  const checked = { entryHash: null, canonical: null, text: null, recorded: null, faults: [] };
  try {
    checked.canonical = fromBase64(item.canonical);
  } catch {
    checked.faults.push({ check: "entry_hash", detail: "canonical bytes are not base64" });
    return checked;
  }
  checked.entryHash = toHex(await sha256(checked.canonical));
  if (checked.entryHash !== item.entry_hash) {
    checked.faults.push({ check: "entry_hash", detail: `canonical bytes hash to ${checked.entryHash}, not ${item.entry_hash}` });
  }
  try {
    checked.text = fromUtf8(checked.canonical);
    const parsed = JSON.parse(checked.text);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new TypeError("not an object");
    checked.recorded = parsed;
  } catch {
    checked.faults.push({ check: "fields", detail: "canonical bytes are not a JSON object" });
    return checked;
  }
  if (canonicalize(checked.recorded) !== checked.text) {
    checked.faults.push({ check: "fields", detail: "canonical bytes are not RFC 8785" });
  }
  if (!deepEqual(item.entry, checked.recorded)) {
    checked.faults.push({ check: "fields", detail: "entry differs from the canonical bytes" });
  }
  const differ = Object.keys(checked.recorded).filter((key) => !deepEqual(item[key], checked.recorded[key]));
  if (differ.length) {
    checked.faults.push({ check: "fields", detail: `shown ${differ.join(", ")} differ from the canonical bytes` });
  }
  return checked;
}

/** A chain followed from customer_seq 0: no gap, each prev_hash the hash of the entry before. */
export class ChainLinks {
  constructor() {
    this.nextSeq = 0;
    this.prevHash = GENESIS_HASH;
  }

  /**
   * @param {Record<string, any>} recorded the entry as hashed @param {string} entryHash its hash
   * @returns {string[]} what is wrong with this link
   */
  follow(recorded, entryHash) {
    const faults = [];
    const seq = recorded.customer_seq;
    if (seq !== this.nextSeq) faults.push(`customer_seq ${seq} where ${this.nextSeq} was expected`);
    if (recorded.prev_hash !== this.prevHash) faults.push("prev_hash does not link to the entry before");
    this.nextSeq = Number.isSafeInteger(seq) ? seq + 1 : this.nextSeq + 1;
    this.prevHash = entryHash;
    return faults;
  }
}
