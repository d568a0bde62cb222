// New entries as they are recorded: GET /v1/me/events (Server-Sent Events). EventSource cannot send
// an Authorization header and the token never goes in a URL, so the stream is read with fetch.

const RETRY_MS = 3000;

export class LiveStream {
  constructor(api, onItem, onState) {
    this.api = api;
    this.onItem = onItem;
    this.onState = onState; // "live" | "reconnecting" (lost, or never reached) | "stopped" (token refused)
    this.lastId = null;
    this.controller = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async loop() {
    while (!this.stopped) {
      try {
        await this.connect();
      } catch (error) {
        if (this.stopped) return;
        if (error.status === 401 || error.status === 403) {
          this.onState("stopped");
          return;
        }
      }
      if (this.stopped) return;
      this.onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  async connect() {
    this.controller = new AbortController();
    const headers = this.api.headers({ Accept: "text/event-stream" });
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    const response = await fetch("/v1/me/events", {
      headers, signal: this.controller.signal, cache: "no-store", referrerPolicy: "no-referrer",
    });
    if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status });
    this.onState("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  dispatch(block) {
    let data = "";
    let id = null;
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "id") id = value;
    }
    if (id !== null) this.lastId = id;
    if (!data) return;
    try {
      this.onItem(JSON.parse(data));
    } catch {
      // A malformed event is skipped; the next page load shows the entry from the history.
    }
  }
}
