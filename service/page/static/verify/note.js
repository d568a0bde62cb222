// C2SP signed notes with Ed25519, tlog-checkpoint bodies, tlog-cosignature v1 and tlog-policy, as
// service/ledger/checkpoint.py, service/witness/cosignature.py and service/witness/policy.py do.

import { concat, equal, fromBase64, sha256, toHex, utf8 } from "./bytes.js";

export const ED25519_TYPE = 0x01; // signed-note "Signature types"
export const COSIGNATURE_TYPE = 0x04; // tlog-cosignature v1, Ed25519
const KEY_SIZE = 32;
const SIGNATURE_SIZE = 64;
const KEY_ID_SIZE = 4;
const TIMESTAMP_SIZE = 8;
const SIGNATURE_PREFIX = "\u2014 "; // em dash, space
const MAX_SIGNATURES = 100;
const MAX_TREE_SIZE = (1n << 64n) - 1n;
const MAX_TIMESTAMP = (1n << 63n) - 1n;
const HASH_SIZE = 32;
export const NONE = "none"; // the quorum that needs no cosignature

export class NoteError extends Error {
  /** @param {string} message */
  constructor(message) { super(message); this.name = "NoteError"; }
}
export class CheckpointError extends Error {
  /** @param {string} message */
  constructor(message) { super(message); this.name = "CheckpointError"; }
}
export class PolicyError extends Error {
  /** @param {string} message */
  constructor(message) { super(message); this.name = "PolicyError"; }
}

// Python's str.isspace, less the control characters every caller refuses anyway.
const SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const SPACES = new RegExp(SPACE.source + "+", "g");
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f]/;
// eslint-disable-next-line no-control-regex
const CONTROL_BUT_NEWLINE = /[\x00-\x09\x0b-\x1f]/;

/** @param {string} name */
function checkKeyName(name) {
  if (!name || name.includes("+") || SPACE.test(name) || CONTROL.test(name)) {
    throw new NoteError(`invalid note key name ${JSON.stringify(name)}`);
  }
}

/**
 * signed-note: SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4].
 * @param {string} name @param {Uint8Array} publicKey @param {number} [keyType]
 * @returns {Promise<Uint8Array>}
 */
export async function keyId(name, publicKey, keyType = ED25519_TYPE) {
  const digest = await sha256(concat(utf8(name), new Uint8Array([0x0a, keyType]), publicKey));
  return digest.subarray(0, KEY_ID_SIZE);
}

/**
 * @typedef {{name: string, keyId: Uint8Array, publicKey: Uint8Array, keyType: number,
 *            cryptoKey: CryptoKey}} Verifier
 */

/**
 * `<name>+<hex key id>+<base64(type ‖ public key)>`; the id must match the name and key.
 * @param {string} text @param {number} [keyType] 0x01 for a log, 0x04 for a witness
 * @returns {Promise<Verifier>} NoteError when malformed
 */
export async function parseVerifierKey(text, keyType = ED25519_TYPE) {
  if (typeof text !== "string") throw new NoteError("a verifier key is text");
  const first = text.indexOf("+"), second = first < 0 ? -1 : text.indexOf("+", first + 1);
  if (second < 0) throw new NoteError("a verifier key is <name>+<hex key id>+<base64 key>");
  const name = text.slice(0, first), idHex = text.slice(first + 1, second), keyText = text.slice(second + 1);
  checkKeyName(name);
  if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw new NoteError(`verifier key id ${idHex} is not 8 hex digits`);
  let key;
  try {
    key = fromBase64(keyText);
  } catch {
    key = null;
  }
  if (key === null || key.length !== 1 + KEY_SIZE || key[0] !== keyType) {
    throw new NoteError(`verifier key is not 0x0${keyType} followed by a 32-byte Ed25519 public key`);
  }
  const publicKey = key.slice(1);
  const id = await keyId(name, publicKey, keyType);
  if (toHex(id) !== idHex.toLowerCase()) throw new NoteError(`verifier key id ${idHex} does not match the key and name`);
  let cryptoKey;
  try {
    cryptoKey = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    throw new NoteError(`the Ed25519 public key cannot be used: ${error instanceof Error ? error.message : error}`);
  }
  return { name, keyId: id, publicKey, keyType, cryptoKey };
}

/** @param {Verifier} verifier @param {Uint8Array} message @param {Uint8Array} signature */
async function verifies(verifier, message, signature) {
  if (signature.length !== SIGNATURE_SIZE) return false;
  try {
    return await crypto.subtle.verify({ name: "Ed25519" }, verifier.cryptoKey, signature, message);
  } catch {
    return false;
  }
}

/** signed-note: valid UTF-8 with no control character but newline. @param {string} text */
function checkNoteCharacters(text) {
  if (typeof text !== "string") throw new NoteError("a note is text");
  if (CONTROL_BUT_NEWLINE.test(text)) throw new NoteError("note contains a control character");
  if (LONE_SURROGATE.test(text)) throw new NoteError("note is not valid UTF-8");
}

/** @typedef {{name: string, keyId: Uint8Array, signature: Uint8Array}} NoteSignature */

/** @param {string} line @returns {NoteSignature} */
function parseSignatureLine(line) {
  if (!line.startsWith(SIGNATURE_PREFIX)) throw new NoteError("signature line must start with an em dash and a space");
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(" ");
  const name = space < 0 ? rest : rest.slice(0, space);
  checkKeyName(name);
  let blob = null;
  if (space >= 0) {
    try {
      blob = fromBase64(rest.slice(space + 1));
    } catch {
      blob = null;
    }
  }
  if (blob === null || blob.length <= KEY_ID_SIZE) throw new NoteError(`signature line of ${name} has no base64 key id and signature`);
  return { name, keyId: blob.subarray(0, KEY_ID_SIZE), signature: blob.subarray(KEY_ID_SIZE) };
}

/**
 * A note's text (up to and with the newline before the last blank line) and its signature lines,
 * none of them checked yet.
 * @param {string} note @returns {{text: string, signatures: NoteSignature[]}} NoteError if malformed
 */
export function splitNote(note) {
  checkNoteCharacters(note);
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new NoteError("note has no blank line before its signatures");
  const text = note.slice(0, split + 1), block = note.slice(split + 2);
  if (!block.endsWith("\n")) throw new NoteError("note must end with a newline-terminated signature line");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new NoteError(`note has more than ${MAX_SIGNATURES} signatures`);
  return { text, signatures: lines.map(parseSignatureLine) };
}

/**
 * The note's text once a signature by `verifier` checks. Lines of unknown keys are ignored (even
 * when only the name or only the id matches); a known key's line that fails rejects the note.
 * @param {string} note @param {Verifier} verifier @returns {Promise<string>} NoteError otherwise
 */
export async function openNote(note, verifier) {
  const { text, signatures } = splitNote(note);
  const message = utf8(text);
  let verified = false;
  for (const line of signatures) {
    if (line.name !== verifier.name || !equal(line.keyId, verifier.keyId)) continue;
    if (!(await verifies(verifier, message, line.signature))) throw new NoteError(`signature by ${line.name} does not verify`);
    verified = true;
  }
  if (!verified) throw new NoteError(`note has no signature by ${verifier.name}+${toHex(verifier.keyId)}`);
  return text;
}

/** @typedef {{origin: string, size: number, root: Uint8Array, extensions: string[]}} Checkpoint */

/**
 * A tlog-checkpoint body: origin, decimal size (no leading zero), base64 root, extension lines.
 * @param {string} text @returns {Checkpoint} CheckpointError if malformed
 */
export function parseCheckpoint(text) {
  if (!text.endsWith("\n")) throw new CheckpointError("checkpoint text must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new CheckpointError("checkpoint needs origin, tree size and root hash lines");
  const [origin, sizeLine, rootLine, ...extensions] = lines;
  if (!origin || CONTROL.test(origin)) throw new CheckpointError("checkpoint origin is empty");
  if (!/^(?:0|[1-9][0-9]*)$/.test(sizeLine) || BigInt(sizeLine) > MAX_TREE_SIZE) {
    throw new CheckpointError(`tree size ${sizeLine} is not a decimal number in 0..2**64-1`);
  }
  if (BigInt(sizeLine) > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(`tree size ${sizeLine} is too large for this verifier`);
  let root = null;
  try {
    root = fromBase64(rootLine, { canonical: true });
  } catch {
    root = null;
  }
  if (root === null || root.length !== HASH_SIZE) throw new CheckpointError(`root hash ${rootLine} is not the base64 of ${HASH_SIZE} bytes`);
  if (extensions.some((line) => !line)) throw new CheckpointError("checkpoint extension lines must be non-empty");
  return { origin, size: Number(sizeLine), root, extensions };
}

/**
 * A checkpoint note signed by the log's key, whose origin is the key's name.
 * @param {string} note @param {Verifier} verifier @returns {Promise<Checkpoint>}
 */
export async function openCheckpoint(note, verifier) {
  const checkpoint = parseCheckpoint(await openNote(note, verifier));
  if (checkpoint.origin !== verifier.name) {
    throw new CheckpointError(`checkpoint origin ${checkpoint.origin} is not the log ${verifier.name}`);
  }
  return checkpoint;
}

// --- tlog-cosignature v1 -------------------------------------------------------------------

/** @param {string} body @param {bigint} timestamp @returns {Uint8Array} what a witness signs */
export function cosignatureMessage(body, timestamp) {
  return utf8(`cosignature/v1\ntime ${timestamp}\n${body}`);
}

/**
 * The timestamp of the witness's valid cosignature on `body`, or null if it has none. A line
 * with the witness's name and key id that does not verify is a NoteError.
 * @param {string} body @param {NoteSignature[]} signatures @param {Verifier} witness (0x04 key)
 * @returns {Promise<bigint|null>}
 */
export async function cosignedBy(body, signatures, witness) {
  let found = null;
  for (const line of signatures) {
    if (line.name !== witness.name || !equal(line.keyId, witness.keyId)) continue;
    const blob = line.signature;
    const timestamp = blob.length >= TIMESTAMP_SIZE
      ? new DataView(blob.buffer, blob.byteOffset, TIMESTAMP_SIZE).getBigUint64(0) : 0n;
    const signature = blob.subarray(TIMESTAMP_SIZE);
    if (signature.length !== SIGNATURE_SIZE || !(timestamp > 0n && timestamp <= MAX_TIMESTAMP)
        || !(await verifies(witness, cosignatureMessage(body, timestamp), signature))) {
      throw new NoteError(`the cosignature by ${witness.name} does not verify`);
    }
    found = timestamp;
  }
  return found;
}

// --- tlog-policy ---------------------------------------------------------------------------

/**
 * @typedef {{name: string, verifier: Verifier, url: string|null}} Witness
 * @typedef {{threshold: number, members: string[]}} Group
 * @typedef {{logs: Verifier[], logUrls: Map<string, string|null>, witnesses: Map<string, Witness>,
 *            groups: Map<string, Group>, quorum: string}} Policy
 */

/**
 * A C2SP tlog-policy file (`log`, `witness`, `group`, `quorum`; names defined before use).
 * @param {string} text @param {{quorumRequired?: boolean}} [options]
 * @returns {Promise<Policy>} PolicyError naming the line when malformed
 */
export async function parsePolicy(text, options = {}) {
  const quorumRequired = options.quorumRequired ?? true;
  /** @type {Policy} */
  const policy = { logs: [], logUrls: new Map(), witnesses: new Map(), groups: new Map(), quorum: NONE };
  let quorum = null;
  const keys = new Set();
  const taken = (name) => {
    if (name === NONE || policy.witnesses.has(name) || policy.groups.has(name)) throw new PolicyError(`the name ${name} is taken`);
    return name;
  };
  const unique = (verifier) => {
    const hex = toHex(verifier.publicKey);
    if (keys.has(hex)) throw new PolicyError(`the key of ${verifier.name} is listed twice`);
    keys.add(hex);
  };
  const lines = text.split("\n");
  for (let number = 1; number <= lines.length; number++) {
    const raw = lines[number - 1];
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(raw)) throw new PolicyError(`line ${number}: a control character`);
    const words = raw.replace(SPACES, " ").trim().split(" ").filter(Boolean);
    if (!words.length || words[0].startsWith("#")) continue;
    const [keyword, ...args] = words;
    try {
      if (keyword === "log" && (args.length === 1 || args.length === 2)) {
        const log = await parseVerifierKey(args[0]);
        unique(log);
        policy.logs.push(log);
        policy.logUrls.set(log.name, args[1] ?? null);
      } else if (keyword === "witness" && (args.length === 2 || args.length === 3)) {
        const name = taken(args[0]);
        const verifier = await parseVerifierKey(args[1], COSIGNATURE_TYPE);
        unique(verifier);
        policy.witnesses.set(name, { name, verifier, url: args[2] ?? null });
      } else if (keyword === "group" && args.length >= 3) {
        const name = taken(args[0]);
        const members = args.slice(2);
        for (const member of members) {
          if (!policy.witnesses.has(member) && !policy.groups.has(member)) {
            throw new PolicyError(`group ${name}: ${member} is not defined on an earlier line`);
          }
        }
        if (new Set(members).size !== members.length) throw new PolicyError(`group ${name} lists a member twice`);
        let threshold = { all: members.length, any: 1 }[args[1]];
        if (threshold === undefined) {
          if (!/^(?:0|[1-9][0-9]*)$/.test(args[1])) throw new PolicyError(`group ${name}: threshold ${args[1]} is not all, any or a number`);
          threshold = Number(args[1]);
        }
        if (!(threshold >= 1 && threshold <= members.length)) {
          throw new PolicyError(`group ${name}: threshold ${threshold} is outside 1..${members.length}`);
        }
        policy.groups.set(name, { threshold, members });
      } else if (keyword === "quorum" && args.length === 1) {
        if (quorum !== null) throw new PolicyError("a second quorum line");
        if (args[0] !== NONE && !policy.witnesses.has(args[0]) && !policy.groups.has(args[0])) {
          throw new PolicyError(`quorum ${args[0]} is not defined on an earlier line`);
        }
        quorum = args[0];
      } else {
        throw new PolicyError(`${keyword} with ${args.length} arguments is not a policy line`);
      }
    } catch (error) {
      throw new PolicyError(`line ${number}: ${error instanceof Error ? error.message : error}`);
    }
  }
  if (quorum === null && quorumRequired) throw new PolicyError("the policy has no quorum line");
  policy.quorum = quorum ?? NONE;
  return policy;
}

/**
 * Whether the witnesses (by policy name) that cosigned meet the policy's quorum.
 * @param {Policy} policy @param {Set<string>} cosigned @param {string} [name]
 * @returns {boolean}
 */
export function quorumMet(policy, cosigned, name = policy.quorum) {
  if (name === NONE) return true;
  const group = policy.groups.get(name);
  if (group === undefined) return cosigned.has(name);
  return group.members.filter((member) => quorumMet(policy, cosigned, member)).length >= group.threshold;
}

/**
 * @typedef {{cosigned: Map<string, bigint>, failed: {witness: string, detail: string}[],
 *            missing: string[], quorum: string, satisfied: boolean}} Witnessed
 * The policy's witnesses with a valid cosignature on the checkpoint in `note`, those whose line
 * does not verify, those without one, and whether the quorum is met (by the valid ones alone).
 * @param {string} note @param {Policy} policy @returns {Promise<Witnessed>}
 */
export async function checkWitnesses(note, policy) {
  const { text, signatures } = splitNote(note);
  const cosigned = new Map(), failed = [], missing = [];
  for (const [name, witness] of policy.witnesses) {
    try {
      const timestamp = await cosignedBy(text, signatures, witness.verifier);
      if (timestamp === null) missing.push(name);
      else cosigned.set(name, timestamp);
    } catch (error) {
      failed.push({ witness: name, detail: error instanceof Error ? error.message : String(error) });
    }
  }
  return { cosigned, failed, missing, quorum: policy.quorum, satisfied: quorumMet(policy, new Set(cosigned.keys())) };
}
