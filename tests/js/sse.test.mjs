// The dashboard's SSE client, against hand-made byte streams: events split across reads,
// several per read, comments, [DONE], errors before and inside the stream, drops and cancel.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SSEParser, eventsOf, followFeed, sendMessageStream } from "../../router/hearth_router/dashboard/sse.js";

const enc = new TextEncoder();

function chunk(extra) {
  return { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta: {}, finish_reason: null }], ...extra };
}
const delta = (text) => ({ ...chunk({}), choices: [{ index: 0, delta: { content: text }, finish_reason: null }] });
const frame = (obj) => `data: ${typeof obj === "string" ? obj : JSON.stringify(obj)}\n\n`;

/** A fetch that answers with `pieces` as separate reads (strings), then `end` ("close" or an Error). */
function fakeFetch(pieces, { status = 200, end = "close", headers = {} } = {}) {
  const calls = [];
  const impl = async (url, init) => {
    calls.push({ url, init });
    if (init.signal && init.signal.aborted) throw new DOMException("aborted", "AbortError");
    let i = 0;
    const body = new ReadableStream({
      pull(controller) {
        if (init.signal && init.signal.aborted) return controller.error(new DOMException("aborted", "AbortError"));
        if (i < pieces.length) return controller.enqueue(enc.encode(pieces[i++]));
        if (end instanceof Error) return controller.error(end);
        controller.close();
      },
    });
    return new Response(status === 200 ? body : pieces.join(""), { status, headers });
  };
  impl.calls = calls;
  return impl;
}

async function collect(gen) {
  const out = [];
  for await (const e of gen) out.push(e);
  return out;
}

const send = (fetchImpl, extra = {}) => sendMessageStream({ url: "http://r/v1/chat/completions", body: { model: "m", messages: [] }, fetchImpl, ...extra });

const FULL = [
  frame(chunk({ status: "routing", message: "Selecting backend…" })),
  frame(chunk({ status: "loading", message: "Warming up m on 3090… ~12 s", estimated_time: 12, progress: 0.2, backend: "3090", node: "gpu-3090" })),
  frame(chunk({ status: "generating", message: "Generating…" })),
  frame(delta("Hel")),
  frame(delta("lo")),
  frame(chunk({ status: "done", message: "Warmed up in 12 s", content: "Hello", usage: { completion_tokens: 2 } })),
  frame("[DONE]"),
];

test("a whole stream yields its stages, the text and done", async () => {
  const events = await collect(send(fakeFetch([FULL.join("")])));
  assert.deepEqual(events.map((e) => e.type === "status" ? e.status : e.type), ["routing", "loading", "generating", "delta", "delta", "done"]);
  const loading = events[1];
  assert.equal(loading.estimatedTime, 12);
  assert.equal(loading.backend, "3090");
  assert.equal(loading.node, "gpu-3090");
  assert.equal(events.filter((e) => e.type === "delta").map((e) => e.content).join(""), "Hello");
  assert.equal(events.at(-1).content, "Hello");
});

test("events split at every byte arrive whole and in order", async () => {
  const text = FULL.join("");
  const events = await collect(send(fakeFetch([...text])));
  assert.equal(events.length, 6);
  assert.equal(events.filter((e) => e.type === "delta").map((e) => e.content).join(""), "Hello");
});

test("a multi-byte character split across reads is not mangled", async () => {
  const bytes = enc.encode(frame(delta("héllo ☃")) + frame(chunk({ status: "done", content: "" })) + frame("[DONE]"));
  const impl = async () => new Response(new ReadableStream({
    start(c) { for (const b of bytes) c.enqueue(new Uint8Array([b])); c.close(); },
  }));
  const events = await collect(send(impl));
  assert.equal(events[0].content, "héllo ☃");
});

test("comments, CRLF line ends and unknown fields are ignored", async () => {
  const text = ": keep-alive\r\n\r\nevent: x\r\nid: 3\r\ndata: " + JSON.stringify(delta("a")) + "\r\n\r\n" + frame(chunk({ status: "done" })) + frame("[DONE]");
  const events = await collect(send(fakeFetch([text])));
  assert.deepEqual(events.map((e) => e.type), ["delta", "done"]);
});

test("a JSON error before the stream is an error event with the router's message and status", async () => {
  const body = JSON.stringify({ error: { message: "The model 'x' does not exist. Known models: m.", type: "invalid_request_error", code: "model_not_found" } });
  const events = await collect(send(fakeFetch([body], { status: 404 })));
  assert.deepEqual(events, [{ type: "error", code: "model_not_found", httpStatus: 404, message: "The model 'x' does not exist. Known models: m." }]);
});

test("a 401 is reported as such", async () => {
  const body = JSON.stringify({ error: { message: "Missing API key", code: "invalid_api_key" } });
  const [event] = await collect(send(fakeFetch([body], { status: 401 })));
  assert.equal(event.httpStatus, 401);
});

test("a non-JSON refusal (a proxy's page) still says what happened", async () => {
  const [event] = await collect(send(fakeFetch(["<html>Bad Gateway</html>"], { status: 502 })));
  assert.equal(event.type, "error");
  assert.match(event.message, /502/);
});

test("an error event inside the stream ends it with that message", async () => {
  const failure = chunk({ status: "error", message: "The engine for m failed", error: { message: "The engine for m failed", code: "upstream_error" } });
  const events = await collect(send(fakeFetch([FULL.slice(0, 4).join("") + frame(failure) + frame("[DONE]")])));
  assert.deepEqual(events.at(-1), { type: "error", message: "The engine for m failed", code: "upstream_error", httpStatus: null });
});

test("a connection that drops mid-reply says so", async () => {
  const events = await collect(send(fakeFetch(FULL.slice(0, 4), { end: new TypeError("network error") })));
  assert.equal(events.at(-1).type, "error");
  assert.equal(events.at(-1).code, "network");
  const closed = await collect(send(fakeFetch(FULL.slice(0, 4))));
  assert.equal(closed.at(-1).code, "network");
});

test("[DONE] without done is not mistaken for a complete reply", async () => {
  const events = await collect(send(fakeFetch([FULL.slice(0, 4).join("") + frame("[DONE]")])));
  assert.equal(events.at(-1).code, "incomplete");
});

test("a router that cannot be reached is an error event", async () => {
  const impl = async () => { throw new TypeError("fetch failed"); };
  const [event] = await collect(send(impl));
  assert.equal(event.code, "network");
  assert.match(event.message, /Cannot reach the router/);
});

test("aborting ends the stream with cancelled", async () => {
  const controller = new AbortController();
  const impl = fakeFetch([...FULL.slice(0, 2), ...Array(50).fill(": keep-alive\n\n")]);
  const seen = [];
  for await (const e of send(impl, { signal: controller.signal })) {
    seen.push(e);
    if (e.type === "status" && e.status === "loading") controller.abort();
  }
  assert.equal(seen.at(-1).type, "cancelled");
  assert.equal(seen.filter((e) => e.type === "cancelled").length, 1);
});

test("the key is sent as a bearer token and stream is forced on", async () => {
  const impl = fakeFetch([FULL.join("")]);
  await collect(send(impl, { apiKey: "k-1" }));
  assert.equal(impl.calls[0].init.headers.Authorization, "Bearer k-1");
  assert.equal(JSON.parse(impl.calls[0].init.body).stream, true);
});

test("the parser keeps a partial line until its end arrives", () => {
  const p = new SSEParser();
  assert.deepEqual(p.feed("data: {\"a\""), []);
  assert.deepEqual(p.feed(":1}\n"), []);
  assert.deepEqual(p.feed("\ndata: x\n\ndata: y\r"), ["{\"a\":1}", "x"]);
  assert.deepEqual(p.feed("\n\r\n"), ["y"]);
});

test("a stock chunk without a status is text, a status chunk is never text", () => {
  assert.deepEqual(eventsOf(delta("x")), [{ type: "delta", content: "x" }]);
  assert.equal(eventsOf(chunk({ status: "queued", queue_position: 2, estimated_time: 4 }))[0].queuePosition, 2);
  assert.deepEqual(eventsOf({ choices: [{ index: 0, text: "legacy" }] }), [{ type: "delta", content: "legacy" }]);
});

test("the feed reconnects after a drop and stops on a 401", async () => {
  let calls = 0;
  const seen = [];
  const states = [];
  const controller = new AbortController();
  const impl = async (url, init) => {
    calls += 1;
    if (calls === 1) return fakeFetch([frame({ key: "a" })], { end: new TypeError("reset") })(url, init);
    if (calls === 2) return fakeFetch([frame({ key: "b" })])(url, init);
    return new Response(JSON.stringify({ error: { message: "Invalid API key" } }), { status: 401 });
  };
  await followFeed({ url: "http://r/api/models/events", signal: controller.signal, fetchImpl: impl, sleep: async () => {}, onEvent: (e) => seen.push(e.key), onState: (s) => states.push(s.state) });
  assert.deepEqual(seen, ["a", "b"]);
  assert.equal(calls, 3);
  assert.equal(states.at(-1), "error");
});
