// RFC 6962 / RFC 9162 Merkle tree proofs, as service/ledger/merkle/proofs.py checks them, plus a
// memoizing checker for many leaves of one tree. Positions are BigInt inside (trees may pass 2**32).

import { concat, equal, sha256 } from "./bytes.js";

export const HASH_SIZE = 32;
const LEAF_PREFIX = new Uint8Array([0]);
const NODE_PREFIX = new Uint8Array([1]);

export class ProofError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "ProofError";
  }
}

/** @param {Uint8Array} data @returns {Promise<Uint8Array>} SHA-256(0x00 ‖ data) */
export function leafHash(data) {
  return sha256(concat(LEAF_PREFIX, data));
}

/** @param {Uint8Array} left @param {Uint8Array} right @returns {Promise<Uint8Array>} */
export function nodeHash(left, right) {
  return sha256(concat(NODE_PREFIX, left, right));
}

/** @param {number|bigint} value @param {string} what @returns {bigint} */
function big(value, what) {
  if (typeof value === "bigint") return value;
  if (Number.isSafeInteger(value)) return BigInt(value);
  throw new ProofError(`${what} is not an integer`);
}

/** @param {bigint} n @returns {number} */
function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

/** How many hashes the inclusion proof of `index` in a tree of `size` has (RFC 9162 PATH). */
function inclusionLength(index, size) {
  let start = 0n, end = size, count = 0;
  while (end - start > 1n) {
    const middle = start + (1n << BigInt(bitLength(end - start - 1n) - 1));
    if (index < middle) end = middle;
    else start = middle;
    count++;
  }
  return count;
}

/** How many hashes the consistency proof from `first` to `second` has (RFC 9162 SUBPROOF). */
function consistencyLength(first, second) {
  let start = 0n, end = second, count = 0, oldIsSubtree = true;
  while (first !== end) {
    const middle = start + (1n << BigInt(bitLength(end - start - 1n) - 1));
    if (first <= middle) end = middle;
    else {
      start = middle;
      oldIsSubtree = false;
    }
    count++;
  }
  return oldIsSubtree ? count : count + 1;
}

/** @param {number} level @param {bigint} index @returns {string} */
const nodeId = (level, index) => `${level}:${index}`;

/**
 * @typedef {{onLeft: boolean, sibling: string, parent: string}} Step
 * The RFC 9162 §2.1.3.2 walk from node `fn` of a tree whose last node is `sn` (at `level`): for
 * each proof hash, whether it is the left sibling, and the ids of that sibling and of the parent.
 * @returns {Step[]}
 */
function walk(fn, sn, count, kind, level = 0) {
  const steps = [];
  for (let i = 0; i < count; i++) {
    if (sn === 0n) throw new ProofError(`${kind} proof is longer than the path to the root`);
    const onLeft = (fn & 1n) === 1n || fn === sn;
    if (onLeft) {
      while (fn !== 0n && (fn & 1n) === 0n) {
        fn >>= 1n;
        sn >>= 1n;
        level++;
      }
    }
    steps.push({ onLeft, sibling: nodeId(level, onLeft ? fn - 1n : fn + 1n), parent: nodeId(level + 1, fn >> 1n) });
    fn >>= 1n;
    sn >>= 1n;
    level++;
  }
  if (sn !== 0n) throw new ProofError(`${kind} proof is shorter than the path to the root`);
  return steps;
}

/** @param {Uint8Array[]} proof */
function checkHashes(proof) {
  if (!Array.isArray(proof)) throw new ProofError("a proof is a list of hashes");
  proof.forEach((value, position) => {
    if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
      throw new ProofError(`proof hash ${position} is not ${HASH_SIZE} bytes`);
    }
  });
}

/** The checks before any hashing; the walk's steps. */
function inclusionSteps(index, size, leaf, proof) {
  if (!(index >= 0n && index < size)) throw new ProofError(`leaf index ${index} is outside a tree of size ${size}`);
  // With an empty proof the leaf is compared with the root as it is: refuse what is not a hash.
  if (!(leaf instanceof Uint8Array) || leaf.length !== HASH_SIZE) {
    throw new ProofError(`leaf hash is not ${HASH_SIZE} bytes`);
  }
  checkHashes(proof);
  const expected = inclusionLength(index, size);
  if (proof.length !== expected) {
    throw new ProofError(`inclusion proof for leaf ${index} of ${size} has ${proof.length} hashes, expected ${expected}`);
  }
  return walk(index, size - 1n, proof.length, "inclusion");
}

/**
 * RFC 9162 §2.1.3.2: the root the proof leads to; ProofError when it is malformed.
 * @param {number|bigint} index @param {number|bigint} size
 * @param {Uint8Array} leaf the leaf hash @param {Uint8Array[]} proof
 * @returns {Promise<Uint8Array>}
 */
export async function rootFromInclusionProof(index, size, leaf, proof) {
  const steps = inclusionSteps(big(index, "leaf index"), big(size, "tree size"), leaf, proof);
  let result = leaf;
  for (let i = 0; i < steps.length; i++) {
    result = steps[i].onLeft ? await nodeHash(proof[i], result) : await nodeHash(result, proof[i]);
  }
  return result;
}

/**
 * @param {number|bigint} index @param {number|bigint} size @param {Uint8Array} leaf
 * @param {Uint8Array[]} proof @param {Uint8Array} root @returns {Promise<void>} ProofError if not
 */
export async function verifyInclusion(index, size, leaf, proof, root) {
  if (!equal(await rootFromInclusionProof(index, size, leaf, proof), root)) {
    throw new ProofError(`inclusion proof for leaf ${index} does not lead to the root of ${size}`);
  }
}

/**
 * RFC 9162 §2.1.4.2; a proof from size 0 is refused (even 0 to 0).
 * @param {number|bigint} first @param {number|bigint} second @param {Uint8Array[]} proof
 * @param {Uint8Array} firstRoot @param {Uint8Array} secondRoot @returns {Promise<void>}
 */
export async function verifyConsistency(first, second, proof, firstRoot, secondRoot) {
  first = big(first, "first size");
  second = big(second, "second size");
  if (first < 0n || second < first) throw new ProofError(`no consistency proof from size ${first} to size ${second}`);
  if (first === 0n) throw new ProofError("a consistency proof needs a non-empty first tree");
  if (first === second) {
    if (proof.length) throw new ProofError("trees of equal size need an empty consistency proof");
    if (!equal(firstRoot, secondRoot)) throw new ProofError(`two different roots for the same tree size ${first}`);
    return;
  }
  checkHashes(proof);
  const expected = consistencyLength(first, second);
  if (proof.length !== expected) {
    throw new ProofError(`consistency proof ${first} -> ${second} has ${proof.length} hashes, expected ${expected}`);
  }
  const path = [...proof];
  // When the old tree is a perfect subtree its root is left out of the proof.
  if ((first & (first - 1n)) === 0n) path.unshift(firstRoot);
  let fn = first - 1n, sn = second - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  const steps = walk(fn, sn, path.length - 1, "consistency");
  let firstResult = path[0], secondResult = path[0];
  for (let i = 0; i < steps.length; i++) {
    const value = path[i + 1];
    if (steps[i].onLeft) {
      [firstResult, secondResult] = await Promise.all([nodeHash(value, firstResult), nodeHash(value, secondResult)]);
    } else {
      secondResult = await nodeHash(secondResult, value);
    }
  }
  if (!equal(firstResult, firstRoot)) throw new ProofError(`consistency proof does not lead to the root of size ${first}`);
  if (!equal(secondResult, secondRoot)) throw new ProofError(`consistency proof does not lead to the root of size ${second}`);
}

/** Whether two paths at the same node go on with the same proof hashes. */
function sameRest(a, b) {
  if (a.steps.length - a.at !== b.steps.length - b.at) return false;
  for (let k = 0; a.at + k < a.steps.length; k++) if (!equal(a.proof[a.at + k], b.proof[b.at + k])) return false;
  return true;
}

/**
 * Inclusion of many leaves in one tree. Every node (level, index) of a path that reached the root,
 * and every sibling it used, is remembered as proven; a later path stops at the first proven node
 * it meets (equal, with the rest of its proof equal to the proven siblings: included; else not),
 * so it accepts exactly what a full walk to the root accepts. Paths of one batch advance a level at a time, their
 * hashes computed together, and paths that meet at the same node with the same hash go on as one.
 */
export class InclusionChecker {
  /** @param {number|bigint} size @param {Uint8Array} root */
  constructor(size, root) {
    this.size = big(size, "tree size");
    /** @type {Map<string, Uint8Array>} */
    this.proven = new Map();
    if (this.size > 0n) this.proven.set(nodeId(bitLength(this.size - 1n), 0n), root);
  }

  /**
   * A path that met a proven node: the proof's hashes above it are siblings of proven nodes, so
   * proven themselves; they must be the proven ones, so that a proof is accepted exactly when a
   * full walk to the root would accept it. True or false; undefined if one is not known (then the
   * path walks on).
   * @returns {boolean|undefined}
   */
  rest(path) {
    for (let k = path.at; k < path.steps.length; k++) {
      const known = this.proven.get(path.steps[k].sibling);
      if (known === undefined) return undefined;
      if (!equal(known, path.proof[k])) return false;
    }
    return true;
  }

  /**
   * @param {number|bigint} index @param {Uint8Array} leaf @param {Uint8Array[]} proof
   * @returns {Promise<void>} ProofError when the leaf is not at `index` in the tree
   */
  async check(index, leaf, proof) {
    const [error] = await this.checkMany([{ index, leaf, proof }]);
    if (error !== null) throw new ProofError(error);
  }

  /**
   * @param {{index: number|bigint, leaf: Uint8Array, proof: Uint8Array[]}[]} items
   * @returns {Promise<(string|null)[]>} per item: null when included, else why not
   */
  async checkMany(items) {
    /** @type {(string|null)[]} */
    const results = items.map(() => null);
    let active = [];
    items.forEach((item, position) => {
      try {
        const index = big(item.index, "leaf index");
        const steps = inclusionSteps(index, this.size, item.leaf, item.proof);
        active.push({ position, index, steps, proof: item.proof, at: 0, current: item.leaf,
                      id: nodeId(0, index), nodes: [], followers: [] });
      } catch (error) {
        results[position] = error instanceof Error ? error.message : String(error);
      }
    });
    const finish = (path, error) => {
      results[path.position] = error;
      if (error === null) {
        for (const [id, value] of path.nodes) if (!this.proven.has(id)) this.proven.set(id, value);
      }
      for (const follower of path.followers) finish(follower, error);
    };
    while (active.length) {
      const next = [];
      const leaders = new Map();
      for (const path of active) {
        const known = this.proven.get(path.id);
        if (known !== undefined) {
          const verdict = equal(known, path.current) ? this.rest(path) : false;
          if (verdict !== undefined) {
            finish(path, verdict ? null : `inclusion proof for leaf ${path.index} does not lead to the root of ${this.size}`);
            continue;
          }
        }
        if (path.at === path.steps.length) {  // cannot happen: the root is proven from the start
          finish(path, `inclusion proof for leaf ${path.index} ends off the root`);
          continue;
        }
        const leader = leaders.get(path.id);
        if (leader !== undefined && equal(leader.current, path.current) && sameRest(leader, path)) {
          leader.followers.push(path);
          continue;
        }
        if (leader === undefined) leaders.set(path.id, path);
        next.push(path);
      }
      await Promise.all(next.map(async (path) => {
        const step = path.steps[path.at], sibling = path.proof[path.at];
        path.nodes.push([path.id, path.current], [step.sibling, sibling]);
        path.current = step.onLeft ? await nodeHash(sibling, path.current) : await nodeHash(path.current, sibling);
        path.id = step.parent;
        path.at++;
      }));
      active = next;
    }
    return results;
  }
}
