// The seenby API as the page uses it: same origin, the token only ever in the Authorization header.

import { t } from "./i18n.js";

/** An answer other than 2xx; status 0: no answer at all (seenby unreachable, the network down). */
export class ApiError extends Error {
  constructor(status, problem, message = null) {
    super(message || problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  /** The token was refused (expired, invalid, not a customer's): signing in again is the fix. */
  get signIn() {
    return this.status === 401 || this.status === 403;
  }

  /** Nothing the customer did: seenby unreachable, failing or busy. Trying again later is the fix. */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

export class Api {
  constructor(token) {
    this.token = token;
    this.customerId = subjectOf(token);
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, Accept: "application/json", ...extra };
  }

  async request(method, path, body) {
    const init = { method, headers: this.headers(), cache: "no-store", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(0, null, error.message);
    }
    const type = response.headers.get("Content-Type") || "";
    let payload = null;
    try {
      payload = type.includes("json") ? await response.json() : await response.text();
    } catch (error) {
      // A cut-off or garbled answer: as good as none.
      throw new ApiError(response.ok ? 0 : response.status, null, error.message);
    }
    if (!response.ok) throw new ApiError(response.status, typeof payload === "object" ? payload : null);
    return payload;
  }

  get(path, query = {}) {
    const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== "" && v != null));
    const suffix = params.size ? `?${params}` : "";
    return this.request("GET", path + suffix);
  }

  post(path, body) {
    return this.request("POST", path, body);
  }

  put(path, body) {
    return this.request("PUT", path, body);
  }

  customerPath(suffix) {
    return `/v1/customers/${encodeURIComponent(this.customerId)}${suffix}`;
  }
}

/** The token's `sub`: which customer the page is about. The server checks the token; this only names it. */
export function subjectOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "="))).sub ?? null;
  } catch {
    return null;
  }
}

/** What went wrong, in words for the customer: never a raw "Failed to fetch" or "HTTP 502". */
export function explain(error) {
  if (!(error instanceof ApiError)) return t("common.broken");
  if (error.signIn) return t("session.expired");
  if (error.status === 0) return t("common.unreachable");
  if (error.transient) return t("common.unavailable");
  return t("common.failed", { detail: error.message });
}
