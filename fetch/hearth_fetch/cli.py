"""`hearth-fetch`: the weights of one source into the cache, with progress on `GET /progress`.

    hearth-fetch --uri hf://org/repo --files '*Q4_K_M.gguf' --cache /cache --listen 0.0.0.0:8090
    hearth-fetch --uri ollama://mistral:7b --ollama http://localhost:11434   (an Ollama sidecar pulls)

Exit 0 when every file is in the cache, whole and verified; 3 when trying again cannot help (not
found, no access, wrong checksum, no room), 1 when it might (the network) — the Job's
podFailurePolicy tells them apart. The last line on stderr says what failed, for the operator.
A `.hearth-fetched.json` beside the files records what was fetched, for people and tools.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from hearth_api.weights_cache import (
    DONE_LINE_PREFIX,
    EXIT_PERMANENT,
    EXIT_RETRY,
    OLLAMA_PORT,
    SHAPE_LINE_PREFIX,
    TERMINATION_LOG,
    BadSource,
    Remote,
    remote,
)
from hearth_fetch import ollama, shape, sources
from hearth_fetch.download import Wanted, fetch, held
from hearth_fetch.failures import FetchFailed, Why
from hearth_fetch.meter import Meter

log = logging.getLogger("hearth.fetch")
EXIT_SIGTERM = 128 + signal.SIGTERM  # as a shell reports a process ended by SIGTERM
MARKER = ".hearth-fetched.json"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hearth-fetch", description=__doc__.split("\n\n")[0])
    p.add_argument("--uri", required=True, help="hf://org/repo[/file] or https://host/file")
    p.add_argument("--cache", default="/cache", help="the weights cache volume's mount")
    p.add_argument("--files", default=None, help="hf:// repositories: a glob of the files to fetch")
    p.add_argument("--sha256", default=None, help="https:// files: the SHA-256 the file must have")
    p.add_argument("--listen", default="0.0.0.0:8090", help="address of GET /progress")
    p.add_argument(
        "--ollama",
        default=f"http://localhost:{OLLAMA_PORT}",
        help="ollama:// sources: the Ollama server that pulls them (the Job's sidecar)",
    )
    p.add_argument(
        "--termination-log",
        type=Path,
        default=Path(TERMINATION_LOG),
        help="where to leave the last word (bytes fetched, or why it failed) for the operator",
    )
    return p


def _writable(cache: Path) -> None:
    """Refuse a cache that cannot be written before any byte is fetched."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / ".hearth-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise FetchFailed(Why.CACHE_UNWRITABLE, f"cannot write to the weights cache {cache}: {exc}") from exc


def _room(cache: Path, meter: Meter, what: str) -> None:
    """Refuse at once what cannot fit, rather than fail after hours of downloading."""
    if meter.total is None:
        return
    free = shutil.disk_usage(cache).free
    left = meter.total - meter.done
    if left > free:
        raise FetchFailed(
            Why.DISK_FULL, f"the weights cache has {free} bytes free; {left} more are needed for {what}"
        )


async def _run(args: argparse.Namespace, meter: Meter) -> str | None:
    """The download; a line saying what model it holds, where its headers say."""
    try:
        source = remote(args.uri)
    except BadSource as exc:
        raise FetchFailed(Why.BAD_SOURCE, str(exc)) from exc
    if source is None:
        raise FetchFailed(Why.BAD_SOURCE, f"{args.uri}: the engine fetches this scheme itself")
    cache = Path(args.cache)
    _writable(cache)
    if source.kind == "ollama":
        return await _pull(args, source, cache, meter)
    return await _fetch_files(args, source, cache, meter)


async def _pull(args: argparse.Namespace, source: Remote, cache: Path, meter: Meter) -> str | None:
    """An Ollama model: the sidecar's Ollama pulls it into the cache's store. One pull of a
    model at a time per store: two Ollama servers (two Jobs) writing one layer's partial file
    would corrupt it — the second waits, then finds every layer there."""
    store = cache / source.folder
    _writable(store)
    (store / ".locks").mkdir(exist_ok=True)
    lock = store / ".locks" / f"{hashlib.sha256(source.name.encode()).hexdigest()[:16]}.lock"
    async with held(lock), httpx.AsyncClient() as client:
        try:
            room = functools.partial(_room, cache, meter, source.name)
            await ollama.pull(client, args.ollama, source.name, meter, room)
        except httpx.HTTPError as exc:
            raise FetchFailed(Why.UNREACHABLE, f"ollama pull {source.name}: {exc!r}") from exc
    log.info("done: %s pulled, %d bytes in the cache", source.name, meter.done)

    def report() -> dict[str, Any] | None:
        found = shape.of_ollama_store(store, source.name)
        return {"shape": found.model_dump(by_alias=True)} if found else None

    return _shape_line(report)


async def _fetch_files(args: argparse.Namespace, source: Remote, cache: Path, meter: Meter) -> str | None:
    """Files over HTTP: a Hugging Face repository's (those `--files` picks) or one URL's."""
    token = os.environ.get("HF_TOKEN") or None
    endpoint = os.environ.get("HF_ENDPOINT") or None
    wanted = await sources.plan(
        source, cache, pattern=args.files, sha256=args.sha256, endpoint=endpoint, token=token
    )
    sizes = [w.size for w in wanted]
    meter.total = sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None
    counted = [w.on_disk() for w in wanted]
    meter.add(time.monotonic(), sum(counted))
    if meter.done:
        log.info("resuming: %d bytes already in the cache", meter.done)
    _room(cache, meter, f"{len(wanted)} file(s)")
    headers = {"Authorization": f"Bearer {token}"} if token and source.kind == "hf" else {}
    timeout = httpx.Timeout(30.0, read=120.0)
    async with httpx.AsyncClient(follow_redirects=True, timeout=timeout) as client:
        for want, on_disk in zip(wanted, counted, strict=True):
            log.info("fetching %s → %s", want.url, want.path)
            try:
                await fetch(client, want, meter, headers, on_disk)
            except httpx.HTTPError as exc:
                raise FetchFailed(Why.UNREACHABLE, f"{want.url}: {exc!r}") from exc
    _record(cache / source.folder / MARKER, args.uri, meter.done, wanted)
    log.info("done: %d bytes of %s in the cache", meter.done, args.uri)
    return _shape_line(lambda: _files_shape(cache / source.folder, [w.path for w in wanted]))


def _files_shape(root: Path, files: list[Path]) -> dict[str, Any] | None:
    found = shape.of_files(root, files)
    if found is None:
        return None
    return {"shape": found[0].model_dump(by_alias=True), "file": found[1]}


def _shape_line(read: Callable[[], dict[str, Any] | None]) -> str | None:
    """The downloaded model's shape as a termination-message line; None where the files are not
    a model Hearth reads (or their headers are wrong: the engine will say so when it loads)."""
    try:
        report = read()
    except (OSError, ValueError) as exc:
        log.warning("the downloaded files' headers could not be read: %s", exc)
        return None
    return f"{SHAPE_LINE_PREFIX}{json.dumps(report, separators=(',', ':'))}" if report else None


def _record(marker: Path, uri: str, size: int, wanted: list[Wanted]) -> None:
    files = [str(w.path.relative_to(marker.parent)) for w in wanted]
    marker.write_text(json.dumps({"uri": uri, "bytes": size, "files": files}))


def _tell(line: str, where: Path) -> None:
    """The last word, one line: last on stderr (a log's tail) and as the termination message."""
    print(line, file=sys.stderr, flush=True)
    with contextlib.suppress(OSError):
        where.write_text(line)


async def _serve_progress(listen: str, meter: Meter, state: dict[str, str]) -> web.AppRunner:
    async def progress(_: web.Request) -> web.Response:
        return web.json_response({**meter.report(), **state})

    app = web.Application()
    app.router.add_get("/progress", progress)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    await web.TCPSite(runner, host or "0.0.0.0", int(port)).start()
    return runner


async def amain(args: argparse.Namespace) -> int:
    meter = Meter()
    state = {"state": "fetching"}
    runner = await _serve_progress(args.listen, meter, state)
    # A container's first process gets no default SIGTERM: as PID 1 it would ignore the
    # kubelet's stop and be killed only after the grace period. Stopped, the partial file stays
    # for the next fetch to resume.
    work = asyncio.current_task()
    assert work is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, work.cancel)
    try:
        said = await _run(args, meter)
        done = f"{DONE_LINE_PREFIX}{meter.done} bytes"
        _tell(f"{said}\n{done}" if said else done, args.termination_log)
        return 0
    except asyncio.CancelledError:
        _tell(f"stopped (SIGTERM) after {meter.done} bytes; the next fetch resumes", args.termination_log)
        return EXIT_SIGTERM
    except FetchFailed as exc:
        state.update(state="failed", reason=exc.why.value, message=exc.message)
        _tell(exc.line, args.termination_log)
        return EXIT_PERMANENT if exc.permanent else EXIT_RETRY
    except Exception as exc:  # a bug or a surprise: logged whole, retried by the Job, named
        log.exception("fetching %s failed unexpectedly", args.uri)
        _tell(
            FetchFailed(Why.UNREACHABLE, f"unexpected {type(exc).__name__}: {exc}").line, args.termination_log
        )
        return EXIT_RETRY
    finally:
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(amain(_parser().parse_args())))
