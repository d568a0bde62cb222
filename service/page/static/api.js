// The seenby API as the page uses it: same origin, the token only ever in the Authorization header.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
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
    const response = await fetch(path, init);
    const type = response.headers.get("Content-Type") || "";
    const payload = type.includes("json") ? await response.json() : await response.text();
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
