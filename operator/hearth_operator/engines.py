"""What each engine runs: image, command, args and env, from a ModelDeployment spec. Pure."""

from __future__ import annotations

import shlex

from hearth_api.model_deployment import (
    ENGINE_DEFAULTS,
    Engine,
    EnvVar,
    ModelDeploymentSpec,
    effective_concurrency,
)

MODELS_MOUNT = "/models"
LLAMACPP_CONTEXT = 4096  # tokens per slot when the spec sets none (the server's own default is
# the model's full trained context, often 128k: far too much KV cache for an 8 GiB card)


def weights(spec: ModelDeploymentSpec) -> str:
    """Where the engine finds the weights: a file/dir under the PVC mount, or the URI's target
    (`hf://org/repo` → `org/repo`, `ollama://mistral:7b` → `mistral:7b`)."""
    source = spec.model_source
    if source is None:
        return spec.model
    if source.pvc is not None:
        return f"{MODELS_MOUNT}/{(source.path or '').lstrip('/')}"
    uri = source.uri or ""
    for scheme in ("hf://", "ollama://"):
        if uri.startswith(scheme):
            return uri[len(scheme) :]
    return uri


def gpu_memory_fraction(vram_gib: float, node_vram_gib: int | None) -> float:
    """vLLM's --gpu-memory-utilization: the model's share of the card, with headroom, so two
    models can share a card when the node allows it."""
    if not node_vram_gib:
        return 0.9
    return round(min(0.95, max(0.1, vram_gib / node_vram_gib)), 2)


def image(spec: ModelDeploymentSpec) -> str:
    return spec.image or ENGINE_DEFAULTS[spec.engine].image


def command(spec: ModelDeploymentSpec) -> list[str] | None:
    if spec.engine is Engine.SIM:
        return ["hearth-sim-engine"]
    return None  # the image's entrypoint


def args(
    spec: ModelDeploymentSpec,
    node_vram_gib: int | None = None,
    cached: str | None = None,
    reserve_gib: float | None = None,
) -> list[str]:
    """The engine's command line; `cached`: the weights' path in the cache mount, when Hearth
    downloaded them (the engine then loads that instead of fetching the source itself);
    `reserve_gib`: what placement reserved on the card (the spec's gpu.vramGiB, or the estimate
    where that is larger): vLLM's --gpu-memory-utilization share."""
    reserve = reserve_gib or spec.gpu.vram_gib or 0
    if spec.args is not None:
        return list(spec.args)
    port = str(spec.port)
    model = cached or weights(spec)
    match spec.engine:
        case Engine.VLLM:
            names = [spec.model, *spec.aliases]
            vllm = [
                "--model",
                model,
                "--served-model-name",
                *names,
                "--port",
                port,
                "--gpu-memory-utilization",
                f"{gpu_memory_fraction(reserve, node_vram_gib):.2f}",
                "--max-num-seqs",
                str(effective_concurrency(spec)),
            ]
            if spec.context_length:
                vllm += ["--max-model-len", str(spec.context_length)]
            return vllm
        case Engine.LLAMACPP:
            slots = effective_concurrency(spec)
            return [
                "-m",
                model,
                "--host",
                "0.0.0.0",
                "--port",
                port,
                "-ngl",
                "99",
                "--alias",
                spec.model,
                "--parallel",
                str(slots),
                # llama.cpp splits -c among its slots: each request gets contextLength.
                "--ctx-size",
                str((spec.context_length or LLAMACPP_CONTEXT) * slots),
                "--metrics",  # llamacpp:* counters on /metrics, for the ServiceMonitor
            ]
        case Engine.SIM:
            return ["--model", spec.model, "--port", port, *(["--weights", cached] if cached else [])]
        case _:
            return []  # Ollama is configured by env; custom images bring their own


def startup_probe(spec: ModelDeploymentSpec, cached: str | None = None) -> dict[str, object] | None:
    """Ollama serves at once but has no model until one is pulled, and loads it on the first
    request: the pod is started only once the model is pulled, named as clients call it, and
    loaded (KubeAI's way, with the CLI the image holds). Readiness then probes `/`. With the
    model in the weights cache (`cached`: the store the fetch Job pulled it into) there is no
    pull: the engine starts without the network."""
    if spec.engine is not Engine.OLLAMA or spec.args is not None:
        return None
    source, name = weights(spec), spec.model
    steps = [] if cached else [f"ollama pull {shlex.quote(source)}"]
    if source != name:
        steps.append(f"ollama cp {shlex.quote(source)} {shlex.quote(name)}")
    steps.append(f"ollama run {shlex.quote(name)} hi >/dev/null")
    return {
        "exec": {"command": ["/bin/sh", "-c", " && ".join(steps)]},
        "periodSeconds": 10,
        "timeoutSeconds": 3600,  # a first pull of several GiB takes minutes
        "failureThreshold": 3,
    }


def ollama_env(listen: str, store: str) -> list[EnvVar]:
    """Ollama's server wherever Hearth runs one (the engine, the fetch Job's sidecar)."""
    return [
        EnvVar(name="OLLAMA_HOST", value=listen),
        EnvVar(name="OLLAMA_MODELS", value=store),
        # A store shared with other pods (the weights cache): Ollama's start-up prune would
        # delete the layers another pod's pull is still writing.
        EnvVar(name="OLLAMA_NOPRUNE", value="1"),
    ]


def env(spec: ModelDeploymentSpec, cached: str | None = None) -> list[dict[str, object]]:
    """`cached`: where the fetch Job left the weights (for Ollama, the store it pulled into)."""
    defaults: list[EnvVar] = [EnvVar(name="HOME", value="/tmp")]
    match spec.engine:
        case Engine.VLLM:
            defaults.append(EnvVar(name="HF_HOME", value="/tmp/hf"))
        case Engine.OLLAMA:
            defaults += [
                *ollama_env(f"0.0.0.0:{spec.port}", cached or "/tmp/ollama"),
                # Hearth decides when a model leaves the GPU: Ollama's own unload would empty a
                # replica the operator still counts as Warm.
                EnvVar(name="OLLAMA_KEEP_ALIVE", value="-1"),
                EnvVar(name="OLLAMA_MAX_LOADED_MODELS", value="1"),
                EnvVar(name="OLLAMA_NUM_PARALLEL", value=str(effective_concurrency(spec))),
            ]
            if spec.context_length:
                defaults.append(EnvVar(name="OLLAMA_CONTEXT_LENGTH", value=str(spec.context_length)))
        case Engine.SIM:
            defaults.append(EnvVar(name="HEARTH_SIM_HOST", value="0.0.0.0"))
        case _:
            pass
    given = {e.name for e in spec.env}
    merged = [e for e in defaults if e.name not in given] + list(spec.env)
    return [e.model_dump(by_alias=True, exclude_none=True) for e in merged]
