// The board: every model's phase and numbers, and a map of the GPUs, live from the router's
// feed (`api/models/events`: the GPU map and each model once, then every change).

import { act } from "./api.js";
import { el } from "./dom.js";
import { bytesText, downloadSummary, duration, modelSummary } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";

// A model's estimated VRAM by part (status.vram, per card), in the order drawn.
const PARTS = [["weights", "weights"], ["kvCache", "KV cache"], ["compute", "compute"], ["overhead", "CUDA overhead"], ["reserved", "reserved beyond the estimate"]];

/** What a model takes of a card: the spec's reservation, or the estimate from its weights. */
function gpuNeed(view) {
  const estimated = view.status?.vram?.totalGiB;
  if (estimated && !(view.gpu.vramGiB >= estimated)) return `${estimated.toFixed(1)} GiB (estimated from its weights)`;
  return `${view.gpu.vramGiB} GiB`;
}

function footprintText(parts) {
  const shown = PARTS.filter(([key]) => parts[key] > 0).map(([key, label]) => `${label} ${parts[key].toFixed(2)} GiB`);
  return `estimated from its weights: ${shown.join(" · ")}`;
}

/** Recent warm-ups as bars (actual) with a mark for what the estimate said before each. */
function warmupChart(history) {
  const svg = document.createElementNS(SVG, "svg");
  const width = 120;
  const height = 28;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "warmups");
  svg.setAttribute("role", "img");
  const recent = history.slice(-10);
  const top = Math.max(1, ...recent.map((h) => Math.max(h.actual, h.estimate)));
  const step = width / 10;
  recent.forEach((h, i) => {
    const bar = document.createElementNS(SVG, "rect");
    const barHeight = (h.actual / top) * (height - 2);
    bar.setAttribute("x", String(i * step + 1));
    bar.setAttribute("y", String(height - barHeight));
    bar.setAttribute("width", String(step - 3));
    bar.setAttribute("height", String(barHeight));
    bar.setAttribute("class", "actual");
    const mark = document.createElementNS(SVG, "rect");
    mark.setAttribute("x", String(i * step));
    mark.setAttribute("y", String(height - (h.estimate / top) * (height - 2) - 1));
    mark.setAttribute("width", String(step - 1));
    mark.setAttribute("height", "2");
    mark.setAttribute("class", "estimate");
    svg.append(bar, mark);
  });
  const label = recent.length
    ? `Last ${recent.length} warm-ups: ${recent.map((h) => `${h.actual.toFixed(1)} s (estimated ${h.estimate.toFixed(0)} s)`).join(", ")}`
    : "No warm-up measured yet";
  svg.setAttribute("aria-label", label);
  const title = document.createElementNS(SVG, "title");
  title.textContent = label;
  svg.prepend(title);
  return svg;
}

export class Board {
  constructor({ models, gpus, gpusError, onModels, onUnauthorized }) {
    Object.assign(this, { modelsEl: models, gpusEl: gpus, gpusError, onModels, onUnauthorized });
    this.models = new Map(); // key → view
    this.gpus = [];
    this.notes = new Map(); // key → the last action's result, shown on its card
    setInterval(() => this.renderModels(), 1000); // idle countdowns
  }

  /** One event of the feed. */
  apply(event) {
    if (event.deleted) this.models.delete(event.deleted);
    else if (Array.isArray(event.gpus)) {
      this.gpus = event.gpus;
      this.gpusError.hidden = !event.error;
      this.gpusError.textContent = event.error || "";
      return this.renderGpus();
    } else if (event.key) this.models.set(event.key, event);
    this.renderModels();
    this.renderGpus();
    this.onModels([...this.models.values()]);
  }

  reset() {
    this.models.clear();
  }

  async action(view, verb) {
    this.notes.set(view.key, { text: verb === "wake" ? "Warm-up requested…" : "Unload requested…" });
    this.renderModels();
    const result = await act(`api/models/${encodeURIComponent(view.model)}/${verb}`);
    if (result.ok) this.notes.set(view.key, { text: verb === "wake" ? "Warm-up requested" : "Unload requested" });
    else {
      this.notes.set(view.key, { text: result.message, error: true });
      if (result.status === 401) this.onUnauthorized();
    }
    this.renderModels();
  }

  renderModels() {
    const views = [...this.models.values()].sort((a, b) => a.model.localeCompare(b.model));
    if (!views.length) {
      this.modelsEl.replaceChildren(el("li", { class: "empty", text: "No ModelDeployments yet: kubectl apply one (see the README)." }));
      return;
    }
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("[data-model]");
    const focusKey = focused && document.activeElement.dataset.action ? [focused.dataset.model, document.activeElement.dataset.action] : null;
    this.modelsEl.replaceChildren(...views.map((v) => this.modelCard(v)));
    if (focusKey) this.modelsEl.querySelector(`[data-model="${CSS.escape(focusKey[0])}"] [data-action="${focusKey[1]}"]`)?.focus();
  }

  modelCard(view) {
    const summary = modelSummary(view);
    const r = view.router || {};
    const phase = summary.phase;
    const li = el("li", { class: "model", "data-model": view.model, "data-phase": phase });
    li.append(
      el("div", { class: "model-head" },
        el("strong", { text: view.model }),
        el("span", { class: "badge", "data-phase": phase, text: phase })),
      el("dl", { class: "facts" },
        el("dt", { text: "engine" }), el("dd", { text: view.engine }),
        el("dt", { text: "GPU" }), el("dd", { text: `${view.gpu.class} · ${gpuNeed(view)}${view.gpu.count > 1 ? ` × ${view.gpu.count}` : ""}` }),
        el("dt", { text: "on" }), el("dd", { class: "where", text: summary.where || "–" }),
        el("dt", { text: "warm-up" }), el("dd", { class: "estimate", text: summary.estimate != null ? `~${duration(summary.estimate)}` : "–" }),
        el("dt", { text: "waiting" }), el("dd", { class: "waiting", text: `${r.waiters || 0} waiting · ${r.in_flight || 0} generating` }),
        el("dt", { text: "last used" }), el("dd", { text: view.status.lastActivity ? new Date(view.status.lastActivity).toLocaleTimeString() : "never" })),
      warmupChart(view.warmup_history || []),
    );
    const download = phase === "Downloading" ? downloadSummary(view.status.download) : null;
    if (download) {
      const bar = el("progress", { class: "download", max: "1", "aria-label": `Download of the weights of ${view.model}` });
      if (download.fraction != null) bar.value = download.fraction;  // no value: indeterminate
      li.append(el("div", { class: "download" }, bar, el("span", { class: "download-text", text: download.text })));
    }
    const cache = view.status.cache;
    if (cache && phase !== "Downloading") {
      li.append(el("p", { class: "cached", text: `weights cached${cache.bytes ? ` (${bytesText(cache.bytes)})` : ""}` }));
    }
    for (const line of summary.lines) li.append(el("p", { class: "model-message", text: line }));
    const wake = el("button", { type: "button", "data-action": "wake", text: "Warm up now", disabled: phase === "Warm" || phase === "Loading" || phase === "Downloading" });
    const sleep = el("button", {
      type: "button",
      "data-action": "sleep",
      text: "Unload",
      disabled: phase === "Cold" || view.min_replicas > 0,
      title: view.min_replicas > 0 ? `kept warm by minReplicas=${view.min_replicas}` : null,
    });
    wake.addEventListener("click", () => this.action(view, "wake"));
    sleep.addEventListener("click", () => this.action(view, "sleep"));
    li.append(el("div", { class: "actions" }, wake, sleep));
    const note = this.notes.get(view.key);
    if (note) li.append(el("p", { class: note.error ? "note error" : "note", role: note.error ? "alert" : "status", text: note.text }));
    return li;
  }

  renderGpus() {
    if (!this.gpus.length) {
      this.gpusEl.replaceChildren(el("li", { class: "empty", text: "No GPU nodes known." }));
      return;
    }
    const items = [];
    for (const node of this.gpus) {
      for (const card of node.cards) {
        const li = el("li", { class: "gpu", "data-node": node.node, "data-card": String(card.index) });
        const name = node.cards.length > 1 ? `${node.label} #${card.index} on ${node.node}` : `${node.label} on ${node.node}`;
        li.append(el("div", { class: "gpu-head" },
          el("strong", { text: name }),
          el("span", { text: `${card.freeGiB} of ${node.vramGiB} GiB free` })));
        const bar = el("div", { class: "vram", role: "img", "aria-label": `${card.usedGiB} of ${node.vramGiB} GiB used: ${card.models.map((m) => `${m.model} ${m.phase}`).join(", ") || "empty"}` });
        const footprints = [];
        for (const m of card.models) {
          const slice = el("span", {
            class: m.parts ? "slice estimated" : "slice",
            "data-model": m.model,
            "data-phase": m.phase,
            style: `width:${(100 * m.vramGiB) / node.vramGiB}%`,
            title: `${m.model}: ${m.vramGiB} GiB, ${m.phase}${m.parts ? ` (${footprintText(m.parts)})` : ""}`,
          });
          if (m.parts) {
            // The estimate by part, as stripes under the label: what the weights, the KV cache,
            // the compute buffer and the CUDA overhead each take of the model's share.
            const stripes = el("span", { class: "parts", "aria-hidden": "true" });
            for (const [key] of PARTS) {
              const gib = m.parts[key];
              if (gib > 0) stripes.append(el("span", { class: "part", "data-part": key, style: `width:${(100 * gib) / m.vramGiB}%` }));
            }
            slice.append(stripes);
            footprints.push(el("p", { class: "footprint", "data-model": m.model, text: `${m.model}: ${footprintText(m.parts)}` }));
          }
          slice.append(el("span", { class: "slice-label", text: `${m.model} · ${m.phase}` }));
          bar.append(slice);
        }
        li.append(bar, ...footprints);
        for (const incoming of card.index === 0 ? node.incoming : []) {
          li.append(el("p", {
            class: "incoming",
            "data-model": incoming.model,
            text: `${incoming.model} is waiting for this GPU: unloading ${incoming.unloading.join(", ")}`,
          }));
        }
        items.push(li);
      }
    }
    this.gpusEl.replaceChildren(...items);
  }
}
