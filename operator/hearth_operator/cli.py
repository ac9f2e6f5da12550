"""`hearth-operator`: run the operator, or generate its CRD."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hearth_operator import crd


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hearth-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("crd", help="write the ModelDeployment CRD generated from the types")
    gen.add_argument("--root", default=".", help="repository root (default: .)")
    gen.add_argument("--stdout", action="store_true", help="print instead of writing files")
    gen.set_defaults(func=_write_crd)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
