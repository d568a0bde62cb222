// Is what a row shows exactly what the verified canonical bytes say?

// Where the entry sits, not what it says: served next to the entry, checked by the log proofs.
const PLACEMENT = new Set(["entry_hash", "log_index"]);

export function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && deepEqual(a[key], b[key]));
}

/**
 * @param item a history item as served
 * @param verified {entries: Map<entry_hash, canonical JSON text>, lastSeq: number} or null
 * @returns {{state: "verified"|"failed"|"pending", field?: string}}
 */
export function checkShown(item, verified) {
  const text = verified?.entries.get(item.entry_hash);
  if (text === undefined) {
    // Older than the last entry the check saw, yet not among what it verified: shown but not real.
    const missed = verified && item.customer_seq <= verified.lastSeq;
    return missed ? { state: "missing" } : { state: "pending" };
  }
  const canonical = JSON.parse(text);
  for (const [field, value] of Object.entries(item)) {
    if (PLACEMENT.has(field)) continue;
    if (!Object.hasOwn(canonical, field) || !deepEqual(canonical[field], value)) return { state: "failed", field };
  }
  for (const field of Object.keys(canonical)) {
    if (!Object.hasOwn(item, field)) return { state: "failed", field };
  }
  return { state: "verified" };
}
