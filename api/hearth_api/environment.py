"""Hearth's environment variables. Each part reads its own `HEARTH_<PART>_*` settings (and the
shared `HEARTH_LOG_LEVEL`); a `HEARTH_*` variable that no part reads is a typo, and a program
stops, naming it, rather than run with a setting silently ignored. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

PREFIXES = ("HEARTH_ROUTER_", "HEARTH_OPERATOR_", "HEARTH_SIM_")
SHARED = frozenset({"HEARTH_LOG_LEVEL"})


Settings = TypeVar("Settings", bound=BaseModel)


def load_settings(cls: type[Settings], program: str, environ: Mapping[str, str], **flags: Any) -> Settings:
    """A part's settings (a pydantic-settings class reading `environ`), the command line's flags
    over them; a misspelt HEARTH_* variable is a ValueError naming it."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    unknown = unknown_variables(environ, prefix, cls.model_fields)
    if unknown:
        raise ValueError(unknown_message(program, unknown, prefix, cls.model_fields))
    return cls(**{k: v for k, v in flags.items() if v is not None})


def unknown_variables(environ: Mapping[str, str], prefix: str, settings: Iterable[str]) -> list[str]:
    """`HEARTH_*` names nothing reads: under `prefix` (this program's), any that is not one of its
    `settings`; elsewhere, any under no part's prefix."""
    known = {prefix + name.upper() for name in settings} | SHARED
    unknown = []
    for name in sorted(environ):
        if not name.startswith("HEARTH_") or name in known:
            continue
        if name.startswith(prefix) or not name.startswith(PREFIXES):
            unknown.append(name)
    return unknown


def unknown_message(program: str, unknown: list[str], prefix: str, settings: Iterable[str]) -> str:
    """`hearth-router: unknown setting HEARTH_ROUTER_PROT (did you mean HEARTH_ROUTER_PORT?)`."""
    valid = sorted({prefix + s.upper() for s in settings} | SHARED)
    lines = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"did you mean {close[0]}?" if close else f"{program} reads {', '.join(valid)}"
        lines.append(f"{program}: unknown setting {name} ({hint})")
    return "\n".join(lines)


def invalid_message(program: str, prefix: str, exc: ValidationError) -> str:
    """`hearth-router: invalid setting HEARTH_ROUTER_PORT: Input should be a valid integer`."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]).upper()
        name = where if where.startswith("HEARTH_") else prefix + where
        lines.append(f"{program}: invalid setting {name}: {err['msg']}")
    return "\n".join(lines)


def in_cluster_server(env: Mapping[str, str]) -> str | None:
    """The API server's URL from the variables a kubelet sets in every container
    (KUBERNETES_SERVICE_HOST and _PORT, as client-go reads them), or None outside a pod."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
