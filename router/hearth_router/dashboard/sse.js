// Server-sent events over fetch: the router's chat stream and its model feed.
//
// Not EventSource: it cannot POST, cannot send an Authorization header, and hides the HTTP
// status of a refusal. A reader over fetch's ReadableStream can do all three, and sees an
// AbortController's cancel at once.

/** Incremental SSE parser: feed it text as it arrives; it returns the complete events' data. */
export class SSEParser {
  constructor() {
    this.buffer = "";
    this.data = [];
  }

  /** @param {string} text  @returns {string[]} the data of each event completed by `text` */
  feed(text) {
    this.buffer += text;
    const out = [];
    let nl;
    while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, nl);
      const width = this.buffer.startsWith("\r\n", nl) ? 2 : 1;
      if (this.buffer[nl] === "\r" && width === 1 && nl === this.buffer.length - 1) {
        break; // a lone CR at the end may be the first half of CRLF: wait for the next read
      }
      this.buffer = this.buffer.slice(nl + width);
      if (line === "") {
        if (this.data.length) out.push(this.data.join("\n"));
        this.data = [];
      } else if (line.startsWith(":")) {
        // a comment (the router's keep-alive): nothing to deliver
      } else {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") this.data.push(value);
      }
    }
    return out;
  }
}

/** The data of each event in a fetch Response's body, as it arrives. */
export async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
    yield* parser.feed(decoder.decode() + "\n\n"); // an event the server ended without a blank line
  } finally {
    reader.releaseLock();
  }
}

/** An OpenAI-style error body's message, else the HTTP status in words. */
export async function errorMessage(response) {
  let text = "";
  try {
    text = await response.text();
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) return { message: body.error.message, code: body.error.code || null };
  } catch {
    // not JSON: a proxy's page, an empty body
  }
  const words = response.statusText ? ` ${response.statusText}` : "";
  return { message: `The router answered ${response.status}${words}${text ? `: ${text.slice(0, 200)}` : ""}`, code: null };
}

function statusEvent(chunk) {
  const { status, message, estimated_time, progress, queue_position, backend, node, timestamp } = chunk;
  return {
    type: "status",
    status,
    message: message || "",
    estimatedTime: typeof estimated_time === "number" ? estimated_time : null,
    progress: typeof progress === "number" ? progress : null,
    queuePosition: typeof queue_position === "number" ? queue_position : null,
    backend: backend || null,
    node: node || null,
    timestamp: typeof timestamp === "number" ? timestamp : null,
    chunk,
  };
}

/** One chunk of the router's stream → the typed events it carries. */
export function eventsOf(chunk) {
  if (chunk && chunk.error) {
    const err = chunk.error;
    return [{ type: "error", message: err.message || chunk.message || "The stream failed", code: err.code || null, httpStatus: null }];
  }
  if (chunk && typeof chunk.status === "string") {
    const event = statusEvent(chunk);
    if (chunk.status === "done") {
      return [{ ...event, type: "done", content: chunk.content || "", usage: chunk.usage || null }];
    }
    return [event];
  }
  const choice = chunk && Array.isArray(chunk.choices) ? chunk.choices[0] : null;
  const text = choice ? (choice.delta && choice.delta.content) || choice.text || "" : "";
  return text ? [{ type: "delta", content: text }] : [];
}

/**
 * Send a chat request and yield its events: `status` (routing, downloading, loading, queued,
 * generating), `delta` (text), `done`, `error` (before or inside the stream, or a dropped
 * connection), and `cancelled` when `signal` aborts. It always ends after one of `done`,
 * `error` or `cancelled`.
 */
export async function* sendMessageStream({ url, body, apiKey = "", signal, fetchImpl = globalThis.fetch }) {
  const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  let response;
  try {
    response = await fetchImpl(url, { method: "POST", headers, body: JSON.stringify({ ...body, stream: true }), signal });
  } catch (exc) {
    if (signal && signal.aborted) return yield { type: "cancelled" };
    return yield { type: "error", code: "network", httpStatus: null, message: `Cannot reach the router: ${exc.message || exc}` };
  }
  if (!response.ok) {
    const { message, code } = await errorMessage(response);
    return yield { type: "error", code, httpStatus: response.status, message };
  }
  let ended = false;
  try {
    for await (const data of readEvents(response)) {
      if (data === "[DONE]") {
        if (!ended) yield { type: "error", code: "incomplete", httpStatus: null, message: "The stream ended before the reply was done" };
        return;
      }
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        continue; // not ours to judge: skip what is not JSON
      }
      const events = eventsOf(chunk);
      for (const event of events) {
        if (event.type === "done" || event.type === "error") ended = true;
        yield event;
      }
      if (events.some((e) => e.type === "error")) return;
    }
  } catch (exc) {
    if (signal && signal.aborted) return yield { type: "cancelled" };
    if (!ended) yield { type: "error", code: "network", httpStatus: null, message: `The connection to the router was lost: ${exc.message || exc}` };
    return;
  }
  if (signal && signal.aborted) return yield { type: "cancelled" };
  if (!ended) yield { type: "error", code: "network", httpStatus: null, message: "The connection to the router closed before the reply was done" };
}

/**
 * Follow an SSE feed (GET) for as long as `signal` allows, reconnecting after a drop with a
 * growing pause; `onEvent` gets each event's parsed JSON, `onState` "open", "retrying" or an
 * HTTP error (a 401 is not retried until the key changes).
 */
export async function followFeed({ url, apiKey = "", signal, onEvent, onState = () => {}, fetchImpl = globalThis.fetch, sleep = delay }) {
  let pause = 500;
  while (!signal.aborted) {
    const headers = { Accept: "text/event-stream" };
    if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
    try {
      const response = await fetchImpl(url, { headers, signal });
      if (!response.ok) {
        const { message } = await errorMessage(response);
        onState({ state: "error", httpStatus: response.status, message });
        if (response.status === 401 || response.status === 403) return;
      } else {
        onState({ state: "open" });
        pause = 500;
        for await (const data of readEvents(response)) {
          try {
            onEvent(JSON.parse(data));
          } catch (exc) {
            if (!(exc instanceof SyntaxError)) throw exc;
          }
        }
      }
    } catch (exc) {
      if (signal.aborted) return;
      onState({ state: "retrying", message: String(exc.message || exc) });
    }
    if (signal.aborted) return;
    onState({ state: "retrying", message: "the feed closed; reconnecting" });
    await sleep(pause, signal);
    pause = Math.min(pause * 2, 10000);
  }
}

export function delay(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
