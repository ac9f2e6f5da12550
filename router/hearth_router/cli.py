"""`hearth-router`: the OpenAI-compatible router with honest loading events."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import uvicorn
from kubernetes_asyncio.config import ConfigException
from pydantic import ValidationError

from hearth_router.app import create_app
from hearth_router.settings import RouterSettings, api_keys_from_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hearth-router", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HEARTH_ROUTER_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("HEARTH_ROUTER_PORT", "8012")))
    parser.add_argument(
        "--namespace",
        default=os.environ.get("HEARTH_NAMESPACE") or None,
        help="watch one namespace (default: all)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("HEARTH_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    overrides: dict[str, object] = {
        k[len("HEARTH_ROUTER_") :].lower(): v
        for k, v in os.environ.items()
        if k.startswith("HEARTH_ROUTER_") and k not in ("HEARTH_ROUTER_HOST", "HEARTH_ROUTER_PORT")
    }
    origins = os.environ.get("HEARTH_ROUTER_CORS_ORIGINS")
    if origins is not None:  # a comma-separated list in the environment
        overrides["cors_origins"] = [o.strip() for o in origins.split(",") if o.strip()]
    try:
        settings = RouterSettings.model_validate(
            {
                **overrides,
                "host": args.host,
                "port": args.port,
                "namespace": args.namespace,
                "api_keys": api_keys_from_env(),
            }
        )
    except ValidationError as exc:
        print(f"hearth-router: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    if settings.api_keys:
        logging.getLogger("hearth.router").info("API keys required (%d configured)", len(settings.api_keys))

    async def run() -> None:
        from hearth_operator.kube import api_client

        app = create_app(settings, await api_client())
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        await uvicorn.Server(config).serve()

    try:
        asyncio.run(run())
    except ConfigException as exc:
        print(
            f"hearth-router: no Kubernetes API to watch ({exc}); set KUBECONFIG, or run it in a pod",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
