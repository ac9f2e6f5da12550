// What the page says about a wait: pure functions of the router's events and model views.

export const PHASES = ["Warm", "Loading", "Downloading", "Evicting", "Cold", "Unschedulable", "Failed"];

/** "~12 s" in the router's messages belongs to the moment it was sent: the page counts itself. */
export function stageText(event) {
  // The countdown is shown on its own, ticking: the message's own figure ("~12 s", "· ~4 min") goes.
  const message = (event.message || "").replace(/\s*·?\s*~\d+\s*(s|min)\s*$/, "");
  if (event.status === "queued" && event.queuePosition) return message || `Queued (position ${event.queuePosition})…`;
  return message || { routing: "Selecting backend…", generating: "Generating…" }[event.status] || event.status;
}

/** Seconds left now, from an event's estimate and how long ago it came: never below 1 while
 * still waiting (a load that overruns says so in its message, not with a 0). */
export function secondsLeft(event, receivedAt, now) {
  if (event.estimatedTime == null) return null;
  const left = event.estimatedTime - (now - receivedAt) / 1000;
  return Math.max(1, Math.ceil(left));
}

/** Progress 0–1 moving smoothly between events: the event's fraction plus elapsed time. */
export function progressNow(event, receivedAt, now) {
  if (event.progress == null) return null;
  if (!event.estimatedTime) return Math.min(event.progress, 1);
  const elapsed = (now - receivedAt) / 1000;
  const total = event.estimatedTime / Math.max(1 - event.progress, 1e-3);
  return Math.min(event.progress + elapsed / total, 0.99);
}

/** A wait left, as the status line shows it: `~40 s`, `~4 min`. */
export function leftText(seconds) {
  return seconds >= 90 ? `~${Math.ceil(seconds / 60)} min` : `~${seconds} s`;
}

/** Bytes as people read them: `3.2 GiB`, `48 MiB`. */
export function bytesText(n) {
  const units = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]];
  for (const [unit, factor] of units) if (n >= factor) return `${(n / factor).toFixed(n < 100 * factor ? 1 : 0)} ${unit}`;
  return `${n} B`;
}

/** A download of the weights as the board shows it, from `status.download`: a fraction and a line. */
export function downloadSummary(download) {
  if (!download) return null;
  const total = download.totalBytes;
  const parts = [total ? `${bytesText(download.bytes || 0)} of ${bytesText(total)}` : bytesText(download.bytes || 0)];
  if (download.bytesPerSecond) parts.push(`${bytesText(download.bytesPerSecond)}/s`);
  if (download.etaSeconds != null) parts.push(`${leftText(Math.max(1, Math.ceil(download.etaSeconds)))} left`);
  return { fraction: total ? Math.min((download.bytes || 0) / total, 1) : null, text: parts.join(" · ") };
}

export function overdue(event) {
  return /taking longer than usual/.test(event.message || "");
}

export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  if (whole < 120) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  return whole % 60 ? `${minutes} min ${whole % 60} s` : `${minutes} min`;
}

/** What stays under a finished reply: how long it waited, where, how fast. */
export function doneSummary({ waitedSeconds, backend, node, usage, generatingSeconds }) {
  const parts = [];
  if (waitedSeconds != null) parts.push(`waited ${duration(waitedSeconds)}`);
  if (backend) parts.push(node ? `on ${backend} (${node})` : `on ${backend}`);
  const tokens = usage && usage.completion_tokens;
  const speed = tokens && generatingSeconds > 0 ? tokens / generatingSeconds : 0;
  // Under 10 tokens/s a whole number reads "0 tokens/s" for a slow but real answer.
  if (speed >= 0.05) parts.push(`${speed.toFixed(speed < 10 ? 1 : 0)} tokens/s`);
  if (tokens) parts.push(`${tokens} tokens`);
  return parts.join(" · ");
}

/** A model's view → what its card on the board says. */
export function modelSummary(view, now = Date.now()) {
  const s = view.status || {};
  const warmup = s.warmup || {};
  const phase = s.phase || "Unknown";
  const lines = [];
  if (s.message) lines.push(s.message);
  if (view.sleeps_at && phase === "Warm") {
    const left = (Date.parse(view.sleeps_at) - now) / 1000;
    lines.push(left > 0 ? `sleeps in ${duration(left)} unless used` : "going to sleep");
  }
  return {
    phase,
    estimate: warmup.estimateSeconds,
    lines,
    where: s.node ? `${(s.gpuClass || "").replace(/^rtx/, "")} on ${s.node}` : null,
  };
}
