"""One Service address's forwarder, a process of its own (`python -m hearth_sim.forwarder HOST
PORT`): it listens on HOST:PORT and pipes each connection to one of the Service's Ready pods, in
turn, chosen at connect time. The homelab writes the pods to its stdin, one line of `ip:port`
targets per change (an empty line: none Ready, connections are refused), and it exits when
stdin closes (the homelab stopped or died).

A process and not a task of the homelab's: a real kube-proxy forwards in the kernel, costing the
cluster's processes nothing, while the homelab's own event loop also runs the API server, the
ingress and often a test's clients — bytes to the routers' store queued behind all of that
would make the store look slow to the routers, which it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys

from hearth_sim.services import Rotation, pipe


class Forwarder:
    def __init__(self) -> None:
        self.targets: list[str] = []
        self.rotation = Rotation()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = self.rotation.pick(self.targets)
        try:
            if target is None:  # no Ready pod: refused, as by kube-proxy's reject rule
                return
            host, port = target.rsplit(":", 1)
            try:
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
            except OSError:
                return
            try:
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()

    async def follow(self, stdin: asyncio.StreamReader) -> None:
        """Take each line of targets as it comes; return when stdin closes."""
        while line := await stdin.readline():
            self.targets = line.decode().split()


async def serve(host: str, port: int) -> int:
    forwarder = Forwarder()
    try:
        server = await asyncio.start_server(forwarder.accept, host, port, family=socket.AF_INET)
    except OSError as exc:
        print(f"cannot listen: {exc}", flush=True)
        return 1
    print("listening", flush=True)  # the homelab waits for this line
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    async with server:
        await forwarder.follow(stdin)
    return 0


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(host, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
