// Bytes: hex, base64, UTF-8, concatenation, comparison and SHA-256 (WebCrypto only).

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** @param {Uint8Array} bytes @returns {string} lowercase hex */
export function toHex(bytes) {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** @param {string} text @returns {Uint8Array} throws on anything but an even number of hex digits */
export function fromHex(text) {
  if (typeof text !== "string" || !HEX.test(text)) throw new TypeError("not hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
  return out;
}

/** @param {Uint8Array} bytes @returns {string} standard base64 with padding */
export function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, i + 0x8000)));
  }
  return btoa(binary);
}

/**
 * Standard base64, padded, nothing else (as Python's b64decode(validate=True)); with
 * `canonical`, also the only encoding of its bytes (no stray bits in the last character).
 * @param {string} text @param {{canonical?: boolean}} [options] @returns {Uint8Array}
 */
export function fromBase64(text, options = {}) {
  if (typeof text !== "string" || text.length % 4 !== 0 || !BASE64.test(text)) {
    throw new TypeError("not base64");
  }
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  if (options.canonical && toBase64(out) !== text) throw new TypeError("not canonical base64");
  return out;
}

/** @param {string} text @returns {Uint8Array} */
export function utf8(text) {
  return encoder.encode(text);
}

/** @param {Uint8Array} bytes @returns {string} throws on invalid UTF-8 */
export function fromUtf8(bytes) {
  return decoder.decode(bytes);
}

/** @param {...Uint8Array} parts @returns {Uint8Array} */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** @param {Uint8Array} a @param {Uint8Array} b @returns {boolean} */
export function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** @param {Uint8Array} data @returns {Promise<Uint8Array>} SHA-256 */
export async function sha256(data) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

/** @param {bigint} value @returns {Uint8Array} u64 big-endian */
export function u64(value) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value);
  return out;
}
