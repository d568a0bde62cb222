// Runs the verification library against the shared vectors and hand-made negatives.
// Usage: node vectors.mjs <suite> <path>; prints {"passed": n, "failures": [...]} as JSON.
//   inclusion|consistency <testdata dir> · index <testdata dir> · note <testdata dir> · witness <fixture.json>

import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const lib = new URL("../../../service/page/static/verify/", import.meta.url);
const { InclusionChecker, verifyConsistency, verifyInclusion } = await import(new URL("merkle.js", lib));
const { indexKey, indexValue, verifyIndexProof } = await import(new URL("index.js", lib));
const note = await import(new URL("note.js", lib));
const { toHex } = await import(new URL("bytes.js", lib));

const [suite, where] = process.argv.slice(2);
let passed = 0;
const failures = [];
const expect = (ok, what) => (ok ? passed++ : failures.push(what));
const b64 = (text) => new Uint8Array(Buffer.from(text ?? "", "base64"));
const rejects = async (promise) => promise.then(() => false, () => true);
const resolves = async (promise) => promise.then(() => true, (e) => { console.error(String(e)); return false; });

function jsonFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? jsonFiles(path) : name.endsWith(".json") ? [path] : [];
  });
}

async function inclusion() {
  for (const path of jsonFiles(join(where, "rfc6962", "inclusion"))) {
    const v = JSON.parse(readFileSync(path, "utf8"));
    const proof = (v.proof ?? []).map(b64);
    const direct = await verifyInclusion(v.leafIdx, v.treeSize, b64(v.leafHash), proof, b64(v.root)).then(() => true, () => false);
    expect(direct === !v.wantErr, `verifyInclusion ${path}`);
    let memo;
    try {
      memo = await new InclusionChecker(v.treeSize, b64(v.root)).check(v.leafIdx, b64(v.leafHash), proof).then(() => true, () => false);
    } catch {
      memo = false; // a size the checker cannot take (not an integer) is a rejection too
    }
    expect(memo === !v.wantErr, `InclusionChecker ${path}`);
  }
}

async function consistency() {
  for (const path of jsonFiles(join(where, "rfc6962", "consistency"))) {
    const v = JSON.parse(readFileSync(path, "utf8"));
    const ok = await verifyConsistency(v.size1, v.size2, (v.proof ?? []).map(b64), b64(v.root1), b64(v.root2))
      .then(() => true, () => false);
    expect(ok === !v.wantErr, `verifyConsistency ${path}`);
  }
}

async function index() {
  const { cases } = JSON.parse(readFileSync(join(where, "customer-index", "vectors.json"), "utf8"));
  const hex = (text) => new Uint8Array(Buffer.from(text, "hex"));
  for (const [n, c] of cases.entries()) {
    const values = new Map();
    for (const [i, k] of c.keys.entries()) {
      const customer = c.customers[i];
      expect(toHex(await indexKey(k.customer_id)) === k.key, `case ${n}: key of ${k.customer_id}`);
      expect(toHex(await indexValue(customer.customer_seq, customer.entry_hash)) === k.value, `case ${n}: value of ${k.customer_id}`);
      values.set(k.key, k.value);
    }
    for (const lookup of c.lookups) {
      expect(toHex(await indexKey(lookup.customer_id)) === lookup.key, `case ${n}: lookup key of ${lookup.customer_id}`);
      try {
        const found = await verifyIndexProof(hex(c.root), hex(lookup.key), lookup.proof);
        const want = lookup.present ? "found" : lookup.proof.leaf === null ? "empty" : "absent";
        expect(found.status === want, `case ${n}: ${lookup.customer_id} is ${found.status}, not ${want}`);
        expect(!lookup.present || toHex(found.value) === values.get(lookup.key), `case ${n}: ${lookup.customer_id}'s value`);
      } catch (error) {
        failures.push(`case ${n}: lookup of ${lookup.customer_id} fails: ${error}`);
      }
    }
    for (const bad of c.invalid_lookups ?? []) {
      const rejected = await verifyIndexProof(hex(c.root), hex(bad.key), bad.proof).then(
        (found) => (bad.present ? found.status !== "found" : found.status === "found"), () => true);
      expect(rejected, `case ${n}: invalid lookup accepted (${bad.why})`);
    }
  }
}

async function signedNote() {
  const v = JSON.parse(readFileSync(join(where, "signed-note", "example.json"), "utf8"));
  const verifier = await note.parseVerifierKey(v.verifier_key);
  expect(verifier.name === v.key_name, "key name");
  expect(toHex(verifier.keyId) === v.key_id_hex, "key id");
  const signed = `${v.signed_text}\n${v.signature_line}\n`;
  expect((await note.openNote(signed, verifier)) === v.signed_text, "the example note opens");
  // One flipped byte in the text, in the signature, in the key: each is refused.
  expect(await rejects(note.openNote(signed.replace("example", "exbmple"), verifier)), "flipped text accepted");
  const blob = b64(v.signature_line.split(" ")[2]);
  blob[20] ^= 1;
  const flippedSignature = `${v.signed_text}\n\u2014 ${v.key_name} ${Buffer.from(blob).toString("base64")}\n`;
  expect(await rejects(note.openNote(flippedSignature, verifier)), "flipped signature accepted");
  const [name, , key] = v.verifier_key.split("+");
  const raw = b64(key);
  raw[5] ^= 1;
  expect(await rejects(note.parseVerifierKey(`${name}+${v.key_id_hex}+${Buffer.from(raw).toString("base64")}`)),
         "a key that does not match its id accepted");
  // A valid key under another name: its signature is not there, and the note is refused.
  const other = await note.keyId("example.com/bar", raw.subarray(1));
  const otherKey = await note.parseVerifierKey(`example.com/bar+${toHex(other)}+${Buffer.from(raw).toString("base64")}`);
  expect(await rejects(note.openNote(signed, otherKey)), "a note opened with another key");
  // Malformed notes and keys.
  expect(await rejects(note.openNote(v.signed_text, verifier)), "a note without signatures accepted");
  expect(await rejects(note.openNote(signed.replace("\n\u2014", "\n\x01\u2014"), verifier)), "a control character accepted");
  expect(await rejects(note.parseVerifierKey("example.com/foo+530d903a")), "a key of two parts accepted");
  expect(await rejects(note.parseVerifierKey(v.verifier_key, note.COSIGNATURE_TYPE)), "a 0x01 key taken for a witness's");
}

async function witness() {
  const f = JSON.parse(readFileSync(where, "utf8"));
  const log = await note.parseVerifierKey(f.log_key);
  for (const c of f.cases) {
    let outcome;
    try {
      const checkpoint = await note.openCheckpoint(c.note, log);
      const policy = await note.parsePolicy(f.policy);
      const w = await note.checkWitnesses(c.note, policy);
      outcome = { size: checkpoint.size, root: Buffer.from(checkpoint.root).toString("base64"),
                  cosigned: [...w.cosigned.keys()].sort(), failed: w.failed.map((x) => x.witness).sort(),
                  satisfied: w.satisfied };
    } catch (error) {
      outcome = { error: error.name };
    }
    const same = JSON.stringify(outcome) === JSON.stringify(c.want);
    expect(same, `${c.name}: got ${JSON.stringify(outcome)}, want ${JSON.stringify(c.want)}`);
  }
  for (const bad of f.bad_policies) {
    expect(await rejects(note.parsePolicy(bad)), `policy accepted: ${bad}`);
  }
  const wrong = await note.parseVerifierKey(f.wrong_log_key);
  expect(await rejects(note.openCheckpoint(f.cases[0].note, wrong)), "a checkpoint opened with the wrong key");
}

const suites = { inclusion, consistency, index, note: signedNote, witness };
await suites[suite]();
console.log(JSON.stringify({ passed, failures }));
