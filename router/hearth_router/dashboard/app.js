// Wires the page: the key panel, the board's feed, the model picker, the chat.

import { apiKey, setApiKey, url } from "./api.js";
import { Board } from "./board.js";
import { Chat } from "./chat.js";
import { duration } from "./format.js";
import { followFeed } from "./sse.js";

const $ = (id) => document.getElementById(id);

function openKeyPanel() {
  $("key-panel").open = true;
  $("api-key").focus();
}

const board = new Board({
  models: $("models"),
  gpus: $("gpus"),
  gpusError: $("gpus-error"),
  onModels: updatePicker,
  onUnauthorized: openKeyPanel,
});

const chat = new Chat({
  list: $("messages"),
  form: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  cancel: $("cancel"),
  clear: $("clear"),
  picker: $("model"),
  announcer: $("stage-announcer"),
  onUnauthorized: openKeyPanel,
});

const PICKED = "hearth.model";

function updatePicker(views) {
  const picker = $("model");
  const chosen = picker.value || localStorage.getItem(PICKED) || "auto";
  const options = [new Option("auto — a warm model if any", "auto")];
  for (const v of [...views].sort((a, b) => a.model.localeCompare(b.model))) {
    const phase = v.status.phase || "Unknown";
    const eta = v.status.warmup && v.status.warmup.estimateSeconds;
    const label = phase === "Warm" || eta == null ? `${v.model} — ${phase}` : `${v.model} — ${phase} · warm-up ~${duration(eta)}`;
    const option = new Option(label, v.model);
    option.dataset.phase = phase;
    options.push(option);
  }
  picker.replaceChildren(...options);
  picker.value = options.some((o) => o.value === chosen) ? chosen : "auto";
  showPhase();
}

function showPhase() {
  const option = $("model").selectedOptions[0];
  const phase = (option && option.dataset.phase) || "";
  $("model-phase").dataset.phase = phase;
  $("model-phase").textContent = phase;
}

$("model").addEventListener("change", () => {
  localStorage.setItem(PICKED, $("model").value);
  showPhase();
});

// --- the feed: reconnects on its own; a new key restarts it --------------------------------------

let feed = null;

function startFeed() {
  if (feed) feed.abort();
  feed = new AbortController();
  board.reset();
  const state = $("feed-state");
  const error = $("board-error");
  followFeed({
    url: url("api/models/events"),
    apiKey: apiKey(),
    signal: feed.signal,
    onEvent: (event) => board.apply(event),
    onState: ({ state: s, httpStatus, message }) => {
      state.dataset.state = s;
      state.textContent = s === "open" ? "live" : s === "retrying" ? "reconnecting…" : `error ${httpStatus || ""}`;
      error.hidden = s !== "error";
      if (s === "error") {
        error.textContent = httpStatus === 401 ? `The router needs an API key: ${message}` : message;
        if (httpStatus === 401) openKeyPanel();
      }
    },
  });
}

$("api-key").value = apiKey();
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setApiKey($("api-key").value.trim());
  $("key-panel").open = false;
  startFeed();
});
$("key-clear").addEventListener("click", () => {
  setApiKey("");
  $("api-key").value = "";
  startFeed();
});

startFeed();
window.hearth = { chat, board }; // for a curious console, and the browser tests
