"""A real Redis (Debian's `redis-server`) for the router replicas to share, as the chart's
optional Valkey Deployment is on a real homelab: bound to one loopback address and port of its
own, nothing written to disk (a restart comes back empty, as a pod without a volume does)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from hearth_sim.ports import free_port

SERVER = "redis-server"


def available() -> bool:
    return shutil.which(SERVER) is not None


class StoreServer:
    def __init__(self, log_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, within: float = 10.0) -> StoreServer:
        """Start (again, on the same address) and return once it answers PING."""
        binary = shutil.which(SERVER)
        if binary is None:
            raise FileNotFoundError(f"{SERVER} is not installed (Debian: apt-get install redis-server)")
        log = (self.log_dir / f"store-{self.port}.log").open("ab")
        # No snapshot, no append-only file, no disk at all: each start is a new, empty store.
        args = [binary, "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.log_dir), "--protected-mode", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + within
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{SERVER} did not start on {self.host}:{self.port}: {self.logs()}")
            time.sleep(0.02)
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as probe:
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """Gone at once, as a store whose node died: no client is told."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        path = self.log_dir / f"store-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""
