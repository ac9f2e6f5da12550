"""What the operator makes of a model's estimated VRAM: status.vram, the VramEstimated
condition, a Warning when the spec reserves less, what would fit when nothing does. Pure.

The estimate is computed from the arguments Hearth renders for the engine (engines.args), so it
follows the spec's own `args` and can never drift from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from hearth_api import footprint
from hearth_api.footprint import Footprint, LlamaCppSettings, ModelShape, VllmSettings
from hearth_api.gpus import GpuNode
from hearth_api.model_deployment import (
    Engine,
    GpuClass,
    ModelDeployment,
    Reason,
    VramStatus,
    gpu_short_name,
)
from hearth_operator import engines

FLAGS = {
    "-c": "ctx_size", "--ctx-size": "ctx_size",
    "-np": "parallel", "--parallel": "parallel",
    "-ngl": "gpu_layers", "--gpu-layers": "gpu_layers", "--n-gpu-layers": "gpu_layers",
    "-ctk": "cache_type_k", "--cache-type-k": "cache_type_k",
    "-ctv": "cache_type_v", "--cache-type-v": "cache_type_v",
    "-ub": "ubatch", "--ubatch-size": "ubatch",
}  # fmt: skip
LLAMACPP_DEFAULT_CONTEXT = (
    4096  # llama-server with no -c takes the trained context; Hearth's args always set one
)


def _flags(args: list[str]) -> dict[str, str]:
    """`--flag value` and `--flag=value` pairs; a later flag wins, as in llama.cpp's parser."""
    out: dict[str, str] = {}
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if eq and name.startswith("-"):
            out[name] = value
        elif arg.startswith("-") and i + 1 < len(args):
            out[arg] = args[i + 1]
    return out


def llamacpp_settings(args: list[str], trained: int | None) -> LlamaCppSettings:
    given = _flags(args)
    values: dict[str, object] = {}
    for flag, field_name in FLAGS.items():
        if flag in given:
            values[field_name] = given[flag]
    if "ctx_size" not in values or str(values["ctx_size"]) == "0":
        values["ctx_size"] = trained or LLAMACPP_DEFAULT_CONTEXT  # -c 0: the model's own
    try:
        return LlamaCppSettings.model_validate(values)
    except ValueError as exc:
        raise ValueError(f"llama.cpp args Hearth cannot read: {exc}") from exc


def vllm_settings(args: list[str]) -> VllmSettings:
    given = _flags(args)
    length = given.get("--max-model-len")
    return VllmSettings(
        max_model_len=int(length) if length and length.isdigit() else None,
        kv_cache_dtype=given.get("--kv-cache-dtype", "auto"),
    )


OLLAMA_CONTEXT = 4096  # Ollama's num_ctx when neither OLLAMA_CONTEXT_LENGTH nor a Modelfile sets it


def ollama_settings(env: list[dict[str, object]]) -> LlamaCppSettings:
    """Ollama runs llama.cpp with `OLLAMA_NUM_PARALLEL` slots of `OLLAMA_CONTEXT_LENGTH` each,
    its cache at `OLLAMA_KV_CACHE_TYPE`: the env Hearth renders for its pod says which."""
    given = {str(e.get("name")): str(e.get("value")) for e in env if e.get("value") is not None}
    try:
        context = int(given.get("OLLAMA_CONTEXT_LENGTH", OLLAMA_CONTEXT))
        slots = int(given.get("OLLAMA_NUM_PARALLEL", 1))
    except ValueError as exc:
        raise ValueError(f"Ollama env Hearth cannot read: {exc}") from exc
    cache = given.get("OLLAMA_KV_CACHE_TYPE", "f16") or "f16"
    return LlamaCppSettings(ctx_size=context * slots, parallel=slots, cache_type_k=cache, cache_type_v=cache)


def gguf_settings(md: ModelDeployment, shape: ModelShape) -> LlamaCppSettings:
    """llama.cpp's settings for a GGUF model: from its args, or for Ollama from its env."""
    if md.spec.engine is Engine.OLLAMA and md.spec.args is None:
        return ollama_settings(engines.env(md.spec))
    return llamacpp_settings(engines.args(md.spec), shape.trained_context)


def estimate(
    md: ModelDeployment, shape: ModelShape, source: str, weights_file: str | None = None
) -> VramStatus:
    """status.vram for the model's spec as it is now."""
    if md.spec.engine is Engine.VLLM:
        s = vllm_settings(engines.args(md.spec))
        print_ = footprint.vllm(shape, s)
        context, slots, cache = s.max_model_len or shape.trained_context, None, s.kv_cache_dtype
    else:
        ls = gguf_settings(md, shape)
        print_ = footprint.llamacpp(shape, ls)
        context, slots, cache = ls.ctx_size // ls.parallel, ls.parallel, ls.cache_type_k
    per_card = _per_card(print_, md.spec.gpu.count)
    return VramStatus(
        **per_card.model_dump(),  # the same parts, by the same names
        context=context,
        slots=slots,
        cache_type=cache,
        source=source,
        weights_file=weights_file,
        uri=source_key(md),
        shape=shape,
    )


def source_key(md: ModelDeployment) -> str:
    """What the headers were read for: the uri, with the `files` glob that picks among a
    repository's files (status.vram.uri; another value means they must be read again)."""
    source = md.spec.model_source
    if source is None or source.uri is None:
        return ""
    return f"{source.uri} files={source.files}" if source.files else source.uri


def expected_format(md: ModelDeployment) -> str:
    return "safetensors" if md.spec.engine is Engine.VLLM else "gguf"


def _per_card(f: Footprint, cards: int) -> Footprint:
    """A model split over `cards` GPUs: an even share of its weights, cache and buffers on each,
    and each card's own CUDA context."""
    if cards <= 1:
        return f
    share = (f.weights_gib + f.kv_cache_gib + f.compute_gib) / cards
    return Footprint(
        weights_gib=round(f.weights_gib / cards, 3),
        kv_cache_gib=round(f.kv_cache_gib / cards, 3),
        compute_gib=round(f.compute_gib / cards, 3),
        overhead_gib=f.overhead_gib,
        total_gib=round(share + f.overhead_gib, 3),
    )


def describe(md: ModelDeployment, vram: VramStatus) -> str:
    """`qwen2.5-14b needs 10.9 GiB with 8192 context x 2 slots`."""
    what = f"{md.spec.model} needs {vram.total_gib:.1f} GiB"
    if vram.context and vram.slots:
        return f"{what} with {vram.context} context x {vram.slots} slot{'s' if vram.slots > 1 else ''}"
    if vram.context:
        return f"{what} with a {vram.context}-token context"
    return what


@dataclass(frozen=True)
class Verdict:
    """The estimate's part of a reconcile."""

    condition: tuple[bool, Reason, str]  # VramEstimated: ok, reason, message
    warning: str | None = None  # a Warning Event's text, when the spec reserves less than needed


def verdict(md: ModelDeployment) -> Verdict:
    vram = md.status.vram
    assert vram is not None
    need = describe(md, vram) + f" (from {vram.source})"
    given = md.spec.gpu.vram_gib
    if given is not None and given < vram.total_gib:
        text = f"{need}; the spec says {given} GiB: placement uses the estimate"
        return Verdict((True, Reason.SPEC_BELOW_ESTIMATE, text), warning=text)
    return Verdict((True, Reason.FROM_HEADERS, need))


def what_fits(md: ModelDeployment, nodes: list[GpuNode]) -> str:
    """For a model no card can hold: the context with which it would fit each kind of card, or
    that none would (`fits the 3090 with contextLength ≤ 3072`)."""
    vram = md.status.vram
    if vram is None or vram.shape is None or vram.shape.format != "gguf":
        return ""
    wanted = md.spec.gpu.gpu_class
    kinds = {n.vram_gib: n for n in nodes if wanted is GpuClass.ANY or n.gpu_class == wanted.value}
    cards = sorted(kinds.values(), key=lambda n: n.vram_gib, reverse=True)
    if not cards:
        return ""
    settings = gguf_settings(md, vram.shape)
    parts = []
    for card in cards:
        fits = footprint.largest_context(vram.shape, settings, card.vram_gib * md.spec.gpu.count)
        if fits:
            parts.append(f"fits the {gpu_short_name(card.gpu_class)} with contextLength ≤ {fits}")
    if parts:
        return (
            "; it "
            + " and ".join(parts)
            + (f" at {settings.parallel} slots" if settings.parallel > 1 else "")
        )
    return f"; its weights alone need {vram.weights_gib:.1f} GiB: no context length makes it fit"


def unreadable(reason: Reason, message: str, spec_gib: int | None) -> Verdict:
    """The headers could not be read: placement falls back on gpu.vramGiB, or (unset) waits."""
    then = f"; placing by gpu.vramGiB={spec_gib}" if spec_gib else "; set gpu.vramGiB to place it without"
    if reason is Reason.HEADERS_UNREACHABLE:
        then += " (retried)"
    text = f"the VRAM could not be estimated: {message}{then}"
    return Verdict((False, reason, text), warning=text)
