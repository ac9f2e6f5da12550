"""`hearth-router`: the OpenAI-compatible router with honest loading events."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Callable

import uvicorn
from kubernetes_asyncio.config import ConfigException
from pydantic import ValidationError

from hearth_api.connect import api_client
from hearth_api.environment import invalid_message, load_settings
from hearth_router.app import create_app
from hearth_router.drain import DrainingServer
from hearth_router.settings import ENV_PREFIX, RouterSettings

FULL_COLLECTION_EVERY = 1000  # middle-generation collections per full one (Python's default: 10)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (a dependency on Linux and macOS), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hearth-router",
        description=__doc__,
        epilog=f"Every setting is also an environment variable {ENV_PREFIX}<NAME> (see settings.py).",
    )
    parser.add_argument("--host", help="address to listen on (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port to listen on (default: 8012)")
    parser.add_argument("--namespace", help="watch one namespace (default: all)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(
            RouterSettings,
            "hearth-router",
            os.environ,
            host=args.host,
            port=args.port,
            namespace=args.namespace,
        )
    except ValidationError as exc:
        print(invalid_message("hearth-router", ENV_PREFIX, exc), file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.api_keys or settings.api_keys_file:
        source = f" and {settings.api_keys_file} (re-read when it changes)" if settings.api_keys_file else ""
        logging.getLogger("hearth.router").info("API keys required: from the environment%s", source)

    async def run() -> None:
        app = create_app(settings, await api_client())
        # Everything built so far (modules, the app, settings) lives as long as the process:
        # frozen, out of the collector's sight. And the full collection, which walks every live
        # object (a thousand waiting streams are a lot of them) for tens of milliseconds in
        # which no request gets its first event, runs after 1000 young collections, not 10:
        # young garbage is still collected as often as before. (`make bench`, the herd: first
        # events a third sooner; the paced herd's worst stall 43 → 10 ms; peak RSS unchanged.)
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            http="auto",  # httptools where installed
            # Limits set on purpose (the drills try them): an idle kept-alive connection is closed
            # after idle_connection_seconds — after the Ingress's proxy closes its own, never
            # before (uvicorn's 5 s raced ingress-nginx's 60 s: a chat sent on a connection being
            # closed is a 502); a burst of a thousand connects is queued by the kernel, not
            # refused. Header and body sizes are capped by limits.BodyLimit (431, 413).
            timeout_keep_alive=settings.idle_connection_seconds,
            backlog=4096,
        )
        await DrainingServer(config, app.state.services, settings.drain_seconds).serve()

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run())
    except ConfigException as exc:
        print(
            f"hearth-router: no Kubernetes API to watch ({exc}); set KUBECONFIG, or run it in a pod",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
