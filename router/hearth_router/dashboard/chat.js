// The chat: a conversation kept in localStorage, messages sent one at a time in order, each
// reply's wait shown stage by stage (the status line), cancel, inline errors with Retry.

import { apiKey, url } from "./api.js";
import { el } from "./dom.js";
import { doneSummary, duration, leftText, overdue, progressNow, secondsLeft, stageText } from "./format.js";
import { renderMarkdown } from "./markdown.js";
import { sendMessageStream } from "./sse.js";

const STORE = "hearth.chat";
const TICK_MS = 200;

export class Chat {
  constructor({ list, form, prompt, send, cancel, clear, picker, announcer, onUnauthorized }) {
    Object.assign(this, { list, form, prompt, send, cancel, clear, picker, announcer, onUnauthorized });
    this.messages = this.load();
    this.pending = []; // user messages waiting their turn
    this.current = null; // { controller, message, view }
    this.render();
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    prompt.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    cancel.addEventListener("click", () => this.cancelAll());
    clear.addEventListener("click", () => this.clearAll());
  }

  load() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORE) || "[]");
      // A reply cut short by a reload is kept, marked as such.
      return saved.map((m) => (m.state === "streaming" || m.state === "queued" ? { ...m, state: "error", error: "Interrupted by a page reload" } : m));
    } catch {
      return [];
    }
  }

  save() {
    localStorage.setItem(STORE, JSON.stringify(this.messages));
  }

  submit() {
    const text = this.prompt.value.trim();
    if (!text) return;
    this.prompt.value = "";
    const message = { role: "user", content: text, model: this.picker.value, state: "queued" };
    this.messages.push(message);
    this.pending.push(message);
    this.save();
    this.render();
    this.pump();
  }

  /** The conversation the model sees for `upTo`: earlier turns that completed, then it. */
  history(upTo) {
    const out = [];
    for (const m of this.messages) {
      if (m === upTo) break;
      if (m.role === "user" && m.state !== "cancelled") out.push({ role: "user", content: m.content });
      if (m.role === "assistant" && m.state === "done") out.push({ role: "assistant", content: m.content });
    }
    out.push({ role: "user", content: upTo.content });
    return out;
  }

  async pump() {
    if (this.current) return;
    const next = this.pending.shift();
    if (!next) return;
    await this.run(next);
    this.pump();
  }

  async run(user, reuse = null) {
    user.state = "sent";
    const reply = reuse || { role: "assistant", content: "", model: user.model, state: "streaming" };
    if (!reuse) this.messages.splice(this.messages.indexOf(user) + 1, 0, reply);
    Object.assign(reply, { content: "", state: "streaming", error: null, summary: null });
    const controller = new AbortController();
    const wait = { event: { status: "routing", message: "Selecting backend…" }, receivedAt: performance.now(), began: performance.now() };
    this.current = { controller, reply, wait };
    this.cancel.disabled = false;
    this.render();
    const ticker = setInterval(() => this.renderStatus(), TICK_MS);
    let generatingAt = null;
    let waitedSeconds = null;
    try {
      const stream = sendMessageStream({
        url: url("v1/chat/completions"),
        body: { model: user.model, messages: this.history(user), stream_options: { include_usage: true } },
        apiKey: apiKey(),
        signal: controller.signal,
      });
      for await (const event of stream) {
        if (event.type === "status") {
          wait.event = event;
          wait.receivedAt = performance.now();
          if (event.status === "generating") {
            generatingAt = performance.now();
            waitedSeconds = (generatingAt - wait.began) / 1000;
          }
          reply.backend = event.backend || reply.backend;
          reply.node = event.node || reply.node;
          this.announce(stageText(event));
          this.renderStatus();
        } else if (event.type === "delta") {
          reply.content += event.content;
          this.renderReply(reply);
        } else if (event.type === "done") {
          reply.state = "done";
          reply.content = reply.content || event.content;
          const generatingSeconds = generatingAt ? (performance.now() - generatingAt) / 1000 : null;
          reply.summary = doneSummary({ waitedSeconds, backend: event.backend, node: event.node, usage: event.usage, generatingSeconds });
          this.announce("Reply complete");
        } else if (event.type === "error") {
          reply.state = "error";
          reply.error = event.message;
          if (event.httpStatus === 401) {
            reply.error = `The router needs an API key (401): ${event.message}`;
            this.onUnauthorized();
          }
          this.announce(`Error: ${reply.error}`);
        } else if (event.type === "cancelled") {
          reply.state = "cancelled";
          this.announce("Cancelled");
        }
      }
    } finally {
      clearInterval(ticker);
      if (reply.state === "streaming") {
        reply.state = "error";
        reply.error = "The reply ended without a result";
      }
      this.current = null;
      this.cancel.disabled = this.pending.length === 0;
      this.save();
      this.render();
    }
  }

  retry(reply) {
    const user = this.messages[this.messages.indexOf(reply) - 1];
    if (!user || user.role !== "user" || this.current) return;
    this.run(user, reply).then(() => this.pump());
  }

  cancelAll() {
    for (const m of this.pending) m.state = "cancelled";
    this.pending = [];
    if (this.current) this.current.controller.abort();
    this.cancel.disabled = true;
    this.save();
    this.render();
    this.prompt.focus();
  }

  clearAll() {
    this.cancelAll();
    this.messages = [];
    this.save();
    this.render();
  }

  announce(text) {
    if (this.announcer.textContent !== text) this.announcer.textContent = text;
  }

  // --- drawing --------------------------------------------------------------------------------

  render() {
    this.list.replaceChildren(...this.messages.map((m) => this.item(m)));
    this.list.lastElementChild?.scrollIntoView({ block: "end" });
    this.renderStatus();
  }

  item(m) {
    const li = el("li", { class: `msg ${m.role}`, "data-state": m.state });
    if (m.role === "user") {
      li.append(el("div", { class: "bubble", text: m.content }));
      const note = { queued: "waiting for the previous reply", cancelled: "not sent (cancelled)" }[m.state];
      if (note) li.append(el("div", { class: "meta", text: note }));
      return li;
    }
    li.append(el("div", { class: "who", text: m.model }));
    const body = el("div", { class: "bubble reply" });
    body.innerHTML = renderMarkdown(m.content); // escaped by renderMarkdown: model text is never markup
    li.append(body);
    if (m.state === "streaming") li.append(el("div", { class: "status-line", "data-status": "routing" }));
    if (m.state === "done" && m.summary) li.append(el("div", { class: "meta summary", text: m.summary }));
    if (m.state === "cancelled") li.append(el("div", { class: "meta", text: "Cancelled" }));
    if (m.state === "error") {
      const retry = el("button", { type: "button", class: "retry", text: "Retry" });
      retry.addEventListener("click", () => this.retry(m));
      li.append(el("div", { class: "error", role: "alert" }, el("span", { text: m.error || "Failed" }), retry));
    }
    return li;
  }

  renderReply(reply) {
    const li = this.list.children[this.messages.indexOf(reply)];
    const body = li && li.querySelector(".reply");
    if (body) body.innerHTML = renderMarkdown(reply.content);
  }

  renderStatus() {
    if (!this.current) return;
    const li = this.list.children[this.messages.indexOf(this.current.reply)];
    const line = li && li.querySelector(".status-line");
    if (!line) return;
    const { event, receivedAt, began } = this.current.wait;
    const now = performance.now();
    const left = event.status === "generating" ? null : secondsLeft(event, receivedAt, now);
    const frac = progressNow(event, receivedAt, now);
    line.dataset.status = event.status;
    line.classList.toggle("overdue", overdue(event));
    const parts = [el("span", { class: "spinner", "aria-hidden": "true" }), el("span", { class: "stage", text: stageText(event) })];
    if (left != null) parts.push(el("span", { class: "eta", text: leftText(left) }));
    if (event.backend) parts.push(el("span", { class: "where", text: event.node ? `${event.backend} · ${event.node}` : event.backend }));
    parts.push(el("span", { class: "elapsed", text: duration((now - began) / 1000) }));
    if (frac != null) {
      const label = event.status === "downloading" ? "Download progress" : "Warm-up progress";
      parts.push(el("progress", { max: "1", value: String(frac.toFixed(3)), "aria-label": label }));
    }
    line.replaceChildren(...parts);
  }
}
