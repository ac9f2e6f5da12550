"""What a waiting client is told: loading and queued events from the model's status and the
clock. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from hearth_api.model_deployment import Eviction, ModelDeployment, Phase, gpu_short_name
from hearth_api.weights_cache import remote


@dataclass(frozen=True)
class Loading:
    message: str
    estimated_time: int
    progress: float
    overdue: bool = False  # past the usual load time: the countdown starts again, saying why
    stage: str = ""  # what is happening, without the figures: a change is news worth sending at once


@dataclass(frozen=True)
class Downloading:
    """A first start's download of the weights, as the operator last reported it."""

    message: str
    progress: float  # bytes / total (0 until the total is known)
    bytes: int
    total_bytes: int | None
    estimated_time: int | None  # whole seconds of download left, once a rate is measured
    stage: str = "downloading"


def size_text(n: float) -> str:
    """Bytes as people read them: `3.2 GiB`, `48 MiB`."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}" if n < 100 * factor else f"{n / factor:.0f} {unit}"
    return f"{n:.0f} B"


def duration_text(seconds: float) -> str:
    """`~4 min`, `~40 s`: a wait as people say it."""
    if seconds >= 90:
        return f"~{math.ceil(seconds / 60)} min"
    return f"~{max(1, math.ceil(seconds))} s"


def first_download(md: ModelDeployment) -> bool:
    """The model downloads its weights before it can load: it is Downloading, or Cold with a
    source Hearth fetches that is not in the cache yet (its first wake: the stream says
    `downloading` from the start, not `loading` and then `downloading`)."""
    if md.status.phase is Phase.DOWNLOADING:
        return True
    source = md.spec.model_source
    if md.status.phase not in (None, Phase.COLD) or source is None or source.uri is None:
        return False
    cached = md.status.cache is not None and md.status.cache.uri == source.uri
    return not cached and remote(source.uri) is not None


def downloading(md: ModelDeployment, since: float = 0.0) -> Downloading:
    """`Downloading qwen2.5-7b for the first time: 3.2 of 14.9 GiB at 48 MiB/s · ~4 min`.

    The operator writes the fetch's figures every two seconds; `since` is how long ago the
    router read them, and the bytes and time left move on at the reported rate meanwhile, so a
    client told something every second sees it count (never past the total, nor to 0 s while
    the download is still running)."""
    model, got = md.spec.model, md.status.download
    head = f"Downloading {model} for the first time"
    if md.status.phase is not Phase.DOWNLOADING or got is None or not (got.bytes or got.total_bytes):
        return Downloading(f"{head}…", 0.0, 0, None, None)
    total, rate, since = got.total_bytes, got.bytes_per_second, max(since, 0.0)
    done = got.bytes + int((rate or 0) * since)
    if total:
        done = min(done, total)
    text = f"{head}: {size_text(done)}" + (f" of {size_text(total)}" if total else "")
    if rate:
        text += f" at {size_text(rate)}/s"
    left = max(1, math.ceil(got.eta_seconds - since)) if got.eta_seconds is not None else None
    if left is not None:
        text += f" · {duration_text(left)}"
    share = min(done / total, 1.0) if total else 0.0
    return Downloading(text, round(share, 3), done, total, left)


def _freeing(gpu: str | None, eviction: Eviction) -> str:
    names = ", ".join(key.split("/", 1)[-1] for key in eviction.models)
    return f"Freeing the {gpu or 'GPU'} on {eviction.node}: unloading {names}…"


def _doing(md: ModelDeployment) -> str:
    """What is happening, in words: waking, freeing a GPU, loading, waiting for room."""
    status, model = md.status, md.spec.model
    gpu = gpu_short_name(status.gpu_class)
    on = f" on {gpu}" if gpu else ""
    if status.phase is Phase.LOADING and status.evicting is not None:
        return _freeing(gpu, status.evicting)
    if status.phase is Phase.EVICTING:
        return f"Waiting for {model} to finish unloading…"
    if status.phase is Phase.UNSCHEDULABLE:
        return f"Waiting for a free GPU: {status.message}"
    if status.phase is Phase.LOADING:
        return f"Warming up {model}{on}…"
    if status.phase is Phase.WARM:  # listed Warm, but its engine refused a connection just now
        return f"Waiting for the {model} engine{on} to come back…"
    return f"Waking {model}{on}…"


def _overrun_left(md: ModelDeployment, elapsed: float, estimate: float) -> int:
    """Past the usual time, still a figure and never 0: up to the slowest recent load, if it is
    still ahead; beyond every past load, a quarter of the usual time."""
    warmup = md.status.warmup
    recent = (warmup.by_gpu_class.get(md.status.gpu_class or "") or warmup.samples)[-5:]
    slowest = max(recent, default=estimate)
    if slowest > elapsed:
        return max(1, math.ceil(slowest - elapsed))
    return max(1, math.ceil(estimate / 4))


def loading(md: ModelDeployment, now: datetime, previous: Loading | None = None) -> Loading:
    """The countdown: the operator's estimate minus the time since the load began, never above
    what the client was last told (`previous`: a countdown does not count up). Past the
    estimate it says so — "taking longer than usual — 18 s so far, usually 15 s" — and counts
    down again from the spread of past loads, never showing 0 while the wait goes on."""
    status, estimate = md.status, md.warmup_estimate
    since = status.loading_since
    elapsed = max((now - since).total_seconds(), 0.0) if since and status.phase is Phase.LOADING else 0.0
    overdue = elapsed > estimate
    doing = _doing(md)
    if overdue:
        left = _overrun_left(md, elapsed, estimate)
        message = f"{doing} taking longer than usual — {elapsed:.0f} s so far, usually {estimate:.0f} s"
    else:
        left = max(1, math.ceil(estimate - elapsed))
    if previous is not None and previous.overdue == overdue:
        left = min(left, previous.estimated_time)
    progress = min(elapsed / estimate, 0.99) if estimate > 0 else 0.0
    if not overdue:
        message = f"{doing} ~{left} s"
    return Loading(message, left, round(progress, 3), overdue, stage=f"{doing} overdue={overdue}")


TYPICAL_ANSWER_TOKENS = 256  # an answer's length when the request sets no max_tokens
SLOWER = 1.25  # answers this much slower than the last estimate assumed: worth a new, higher ETA


@dataclass(frozen=True)
class AnswerTime:
    seconds: float  # one answer, start to end
    guess: bool  # no answer of this model measured yet: a prior, and the message says so


def answer_seconds(
    measured: float | None, max_tokens: int | None, measured_tps: float | None, prior_tps: float
) -> AnswerTime:
    """How long one answer takes, from what is known: this model's measured answers, else the
    request's max_tokens at the measured speed, else at the engine's typical speed."""
    if measured is not None:
        return AnswerTime(measured, guess=False)
    tokens = max_tokens or TYPICAL_ANSWER_TOKENS
    return AnswerTime(tokens / (measured_tps or prior_tps), guess=measured_tps is None)


@dataclass(frozen=True)
class Queued:
    """What a queued client was told: its place, the ETA, and the basis of both for the next
    update (the ETA counts down from `due`; `per_answer` is what it assumed)."""

    position: int
    estimated_time: int
    message: str
    due: float  # clock time (monotonic) the ETA runs out
    per_answer: float
    overdue: bool = False


def queued(
    model: str,
    position: int,
    answer: AnswerTime,
    capacity: int,
    now: float,
    waited: float,
    previous: Queued | None = None,
    this_replica_only: bool = False,
) -> Queued:
    """The queue estimate for the request at `position`: the whole answers ahead of it spread
    over the replicas' slots. `this_replica_only`: the routers' shared line is away, and the
    place counts only this router replica's requests — the message says so, never claiming a
    place in the whole line. It counts down from what was last told and only falls as the
    line moves; it goes up only for a stated reason — the measured answers turned out slower
    than assumed, or the wait passed its estimate — and is never 0 while the request waits."""
    computed = answer.seconds * position / max(capacity, 1)
    why = ""
    overdue = False
    if previous is None:
        left = computed
    else:
        countdown = previous.due - now
        if computed <= countdown:
            left = computed  # the line moved at least as fast as told
        elif answer.seconds > previous.per_answer * SLOWER:
            left, why = computed, "answers are taking longer than estimated"
        elif countdown > 0:
            left = countdown  # nothing new is known: keep counting down
        else:  # past the estimate: at least until the next answer ends
            left, overdue = max(computed, answer.seconds), True
        overdue = overdue or previous.overdue  # once past its first estimate, the wait says so
        if overdue:
            why = f"taking longer than estimated — {waited:.0f} s so far"
    shown = max(1, math.ceil(left))
    ahead = "1 request" if position == 1 else f"{position} requests"
    where = " at this router replica" if this_replica_only else ""
    message = f"Queued behind {ahead}{where} for {model}… ~{shown} s"
    if why:
        message += f" ({why})"
    elif answer.guess:
        message += f" (a first estimate: no answer from {model} measured yet)"
    # `due` keeps the unrounded figure: rounding it up at every update would stall the countdown.
    return Queued(position, shown, message, now + left, answer.seconds, overdue)


def summary(gpu_class: str | None, warmed_in: float | None, tokens_per_second: float | None) -> str:
    """The line Open WebUI keeps above the reply: "Warmed up in 12 s on 3090 · 38 tokens/s"."""
    gpu = gpu_short_name(gpu_class) or "GPU"
    head = f"Warmed up in {warmed_in:.0f} s on {gpu}" if warmed_in is not None else f"On {gpu}"
    speed = speed_text(tokens_per_second)
    return f"{head} · {speed}" if speed else head


def speed_text(tokens_per_second: float | None) -> str:
    """`38 tokens/s`, `2.4 tokens/s` under 10; "" for a speed that was not measured (a real
    llama.cpp answer of 7 tokens in 22 s on busy cores read "0 tokens/s")."""
    if not tokens_per_second or tokens_per_second < 0.05:
        return ""
    if tokens_per_second < 10:
        return f"{tokens_per_second:.1f} tokens/s"
    return f"{tokens_per_second:.0f} tokens/s"
