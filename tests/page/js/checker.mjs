// InclusionChecker over a big tree built here with node:crypto (a reference independent of the
// library): 10,000 leaves of one "customer" verify, and tampered proofs fail with the memo warm.
// Usage: node checker.mjs <tree size> <leaves>; prints JSON.

import { createHash, randomBytes } from "node:crypto";

const lib = new URL("../../../service/page/static/verify/", import.meta.url);
const { InclusionChecker, rootFromInclusionProof } = await import(new URL("merkle.js", lib));

const size = Number(process.argv[2] ?? 1_000_003), count = Number(process.argv[3] ?? 10_000);
const sha = (...parts) => new Uint8Array(createHash("sha256").update(Buffer.concat(parts)).digest());
const ZERO = Buffer.from([0]), ONE = Buffer.from([1]);

// Levels of the left-balanced tree: a lone last node is carried up, which is RFC 6962's MTH.
const levels = [Array.from({ length: size }, (_, i) => sha(ZERO, Buffer.from(`leaf ${i}`)))];
while (levels[levels.length - 1].length > 1) {
  const below = levels[levels.length - 1], above = [];
  for (let i = 0; i < below.length; i += 2) above.push(i + 1 < below.length ? sha(ONE, below[i], below[i + 1]) : below[i]);
  levels.push(above);
}
const root = levels[levels.length - 1][0];
const proofOf = (index) => {
  const proof = [];
  for (let level = 0, i = index; level < levels.length - 1; level++, i >>= 1) {
    if ((i ^ 1) < levels[level].length) proof.push(levels[level][i ^ 1]);
  }
  return proof;
};

// A customer's entries: sorted, mostly scattered, some in runs (a batch of its accesses).
const picked = new Set();
while (picked.size < count) {
  const start = Math.floor(Math.random() * size);
  const run = Math.random() < 0.2 ? 5 : 1;
  for (let i = start; i < Math.min(size, start + run) && picked.size < count; i++) picked.add(i);
}
const indices = [...picked].sort((a, b) => a - b);

const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };

// The reference proofs agree with the one-off verification.
for (const i of [0, 1, size - 1, size - 2, indices[17]]) {
  const got = await rootFromInclusionProof(i, size, levels[0][i], proofOf(i));
  check(Buffer.compare(Buffer.from(got), Buffer.from(root)) === 0, `rootFromInclusionProof ${i}`);
}

let digests = 0;
const digest = crypto.subtle.digest.bind(crypto.subtle);
crypto.subtle.digest = (...args) => { digests++; return digest(...args); };

const checker = new InclusionChecker(size, root);
const started = performance.now();
for (let at = 0; at < indices.length; at += 500) {
  const batch = indices.slice(at, at + 500).map((index) => ({ index, leaf: levels[0][index], proof: proofOf(index) }));
  const errors = await checker.checkMany(batch);
  errors.forEach((error, k) => check(error === null, `leaf ${batch[k].index}: ${error}`));
}
const elapsed = performance.now() - started;
const perLeaf = digests / indices.length;

// With the memo warm, nothing wrong passes.
const flip = (bytes) => { const copy = new Uint8Array(bytes); copy[0] ^= 1; return copy; };
const fresh = (() => { let i; do i = Math.floor(Math.random() * size); while (picked.has(i) || picked.has(i ^ 1)); return i; })();
const known = indices[Math.floor(indices.length / 2)];
const bad = [
  ["flipped leaf, verified before", { index: known, leaf: flip(levels[0][known]), proof: proofOf(known) }],
  ["flipped leaf, new", { index: fresh, leaf: flip(levels[0][fresh]), proof: proofOf(fresh) }],
  ["flipped lowest sibling", { index: fresh, leaf: levels[0][fresh], proof: proofOf(fresh).map((h, k) => (k === 0 ? flip(h) : h)) }],
  ["flipped top sibling", { index: fresh, leaf: levels[0][fresh], proof: proofOf(fresh).map((h, k, all) => (k === all.length - 1 ? flip(h) : h)) }],
  ["another leaf's hash", { index: fresh, leaf: levels[0][known], proof: proofOf(fresh) }],
  ["a leaf at the wrong index", { index: known ^ 1, leaf: levels[0][known], proof: proofOf(known) }],
  ["a proof one hash short", { index: fresh, leaf: levels[0][fresh], proof: proofOf(fresh).slice(1) }],
  ["a random leaf", { index: fresh, leaf: new Uint8Array(randomBytes(32)), proof: proofOf(fresh) }],
];
for (const [what, item] of bad) {
  const [error] = await checker.checkMany([item]);
  check(error !== null, `accepted: ${what}`);
}
// In one batch: a good leaf and a bad one on the same path, and the same good leaf twice.
const mixed = await checker.checkMany([
  { index: fresh, leaf: levels[0][fresh], proof: proofOf(fresh) },
  { index: fresh ^ 1, leaf: flip(levels[0][fresh ^ 1]), proof: proofOf(fresh ^ 1) },
  { index: fresh, leaf: levels[0][fresh], proof: proofOf(fresh) },
]);
check(mixed[0] === null && mixed[1] !== null && mixed[2] === null, `mixed batch: ${JSON.stringify(mixed)}`);
// A new checker sees the same tree's root as it is: every leaf of a tiny tree, one at a time.
const small = 7;
const tinyLevels = [Array.from({ length: small }, (_, i) => sha(ZERO, Buffer.from([i])))];
while (tinyLevels[tinyLevels.length - 1].length > 1) {
  const below = tinyLevels[tinyLevels.length - 1], above = [];
  for (let i = 0; i < below.length; i += 2) above.push(i + 1 < below.length ? sha(ONE, below[i], below[i + 1]) : below[i]);
  tinyLevels.push(above);
}
const tiny = new InclusionChecker(small, tinyLevels[tinyLevels.length - 1][0]);
for (let i = 0; i < small; i++) {
  const proof = [];
  for (let level = 0, j = i; level < tinyLevels.length - 1; level++, j >>= 1) {
    if ((j ^ 1) < tinyLevels[level].length) proof.push(tinyLevels[level][j ^ 1]);
  }
  const ok = await tiny.check(i, tinyLevels[0][i], proof).then(() => true, (e) => String(e));
  check(ok === true, `tiny tree leaf ${i}: ${ok}`);
}

console.log(JSON.stringify({ size, leaves: indices.length, milliseconds: Math.round(elapsed),
                             digestsPerLeaf: Number(perLeaf.toFixed(2)), failures }));
