"""`hearth-operator`: run the operator (`run`), or generate its CRD (`crd`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from hearth_api import crd
from hearth_api.environment import invalid_message, load_settings
from hearth_operator.settings import ENV_PREFIX, OperatorSettings


def _write_crd(args: argparse.Namespace) -> int:
    text = crd.render_crd()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    for path in crd.crd_paths(Path(args.root)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(
            OperatorSettings, "hearth-operator", os.environ, namespace=args.namespace, liveness=args.liveness
        )
    except ValidationError as exc:
        print(invalid_message("hearth-operator", ENV_PREFIX, exc), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    import kopf

    from hearth_operator import handlers  # noqa: F401  (registers the handlers)

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kopf.objects", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=settings.namespace is None,
            namespaces=[settings.namespace] if settings.namespace else [],
            liveness_endpoint=settings.liveness,
            memo=kopf.Memo(settings=settings),
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hearth-operator",
        description=__doc__,
        epilog=f"Every setting is also an environment variable {ENV_PREFIX}<NAME> (see settings.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("crd", help="write the ModelDeployment CRD generated from the types")
    gen.add_argument("--root", default=".", help="repository root (default: .)")
    gen.add_argument("--stdout", action="store_true", help="print instead of writing files")
    gen.set_defaults(func=_write_crd)
    run = sub.add_parser("run", help="run the operator against the cluster of the kubeconfig or pod")
    run.add_argument("--namespace", "-n", help="watch one namespace (default: all)")
    run.add_argument("--liveness", help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    run.set_defaults(func=_run)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
