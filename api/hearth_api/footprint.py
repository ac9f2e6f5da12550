"""How much VRAM a model takes, from its own files: pure functions over what a GGUF or
safetensors header (and config.json) says, and the settings its engine is given.

What is counted, and from where:
- **Weights**: every tensor's bytes, as the header gives them. llama.cpp keeps the token
  embedding on the host (its input layer is always on the CPU) and offloads the rest with
  `-ngl`; a model whose output layer is the embedding (tied) gets a copy of it on the GPU.
- **KV cache** (llama.cpp `llama_kv_cache`): per layer, K and V of `n_embd_head x n_head_kv`
  elements for each cell, at the cache type (`-ctk`/`-ctv`, f16 unless set); the cells are
  `--ctx-size` split among the `--parallel` slots, each slot's share rounded up to 256.
  vLLM (`KVCacheSpec.page_size_bytes`): 2 x layers x KV heads x head size x dtype per token.
- **Compute buffer** (llama.cpp's graph reserve, flash attention on, which is its default):
  `n_ubatch x 4 B x (3 n_ff + 4 n_embd)` for the FFN's and attention's largest live
  intermediates (3 n_embd with a quantised cache), plus the attention mask,
  `n_ctx_per_slot x n_ubatch x 2 B`. Measured against llama.cpp's own reserve on four
  architectures x four contexts x two cache types, it is exact to the MiB (docs/performance.md).
- **Overhead**: the CUDA context, cuBLAS workspace and llama.cpp's pool, which no file says and
  which Hearth cannot measure without a GPU: a fixed prior (CUDA_OVERHEAD_GIB).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from hearth_api import gguf_header, safetensors_header
from hearth_api.gguf_header import BadHeader

GIB = 2**30
MIB = 2**20
# A CUDA 12 context on Ampere with lazy module loading (~300 MiB) plus cuBLAS's workspace and
# llama.cpp's device pool: the part of a process's VRAM that does not depend on the model.
CUDA_OVERHEAD_GIB = 0.5
KV_CELL_PAD = 256  # llama.cpp rounds each slot's cells up to a multiple of this
UBATCH = 512  # llama.cpp's default --ubatch-size
CACHE_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32,
                    "q5_0": 22 / 32, "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32}  # fmt: skip
VLLM_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1, "fp8": 1}
# vLLM holds this much more than weights and KV cache: activations of a profiling run and CUDA
# graphs (its own docs put graphs at a few hundred MiB); not measured here (no vLLM runs on CPU).
VLLM_RUNTIME_GIB = 1.0


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ModelShape(_Model):
    """What a footprint needs to know of a model, read from its files' headers."""

    format: Literal["gguf", "safetensors"]
    architecture: str
    layers: int = Field(ge=1)
    embedding: int = Field(ge=1)
    feed_forward: int = Field(ge=0)
    vocab: int = Field(ge=0)
    trained_context: int | None = None
    kv_elements: int = Field(ge=0, description="K and V elements per token over all layers.")
    weights_bytes: int = Field(ge=0, description="All tensors.")
    input_bytes: int = Field(default=0, ge=0, description="The token embedding (kept on the host).")
    tied_output: bool = False
    dtype: str = Field(default="", description="The file's type: Q4_K_M, BF16…")


class Footprint(_Model):
    """A model's VRAM on one card, in GiB, by part."""

    weights_gib: float
    kv_cache_gib: float
    compute_gib: float
    overhead_gib: float
    total_gib: float


class LlamaCppSettings(_Model):
    """The llama.cpp flags a footprint depends on."""

    ctx_size: int = Field(ge=1)  # --ctx-size: all slots together
    parallel: int = Field(default=1, ge=1)
    gpu_layers: int = 99
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    ubatch: int = UBATCH


class VllmSettings(_Model):
    max_model_len: int | None = None
    kv_cache_dtype: str = "auto"


def _gib(n: float) -> float:
    return round(n / GIB, 3)


def _metadata_int(meta: dict[str, Any], key: str, default: int | None = None) -> int:
    value = meta.get(key, default)
    if isinstance(value, list):  # per-layer values (some architectures): the largest
        value = max(value) if value else default
    if value is None:
        raise BadHeader(f"the header has no {key}")
    return int(value)


FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
              11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
              17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}  # fmt: skip


def shape_of_gguf(header: gguf_header.Header) -> ModelShape:
    """The model a GGUF header describes (llama.cpp's `llm_load_hparams` keys)."""
    meta = header.metadata
    arch = header.architecture
    if not arch:
        raise BadHeader("the header has no general.architecture")
    layers = _metadata_int(meta, f"{arch}.block_count")
    embd = _metadata_int(meta, f"{arch}.embedding_length")
    heads = _metadata_int(meta, f"{arch}.attention.head_count")
    kv_heads = _metadata_int(meta, f"{arch}.attention.head_count_kv", heads)
    if heads < 1 or layers < 1:
        raise BadHeader(f"{arch}.attention.head_count and block_count must be positive")
    head_k = _metadata_int(meta, f"{arch}.attention.key_length", embd // heads)
    head_v = _metadata_int(meta, f"{arch}.attention.value_length", embd // heads)
    names = {t.name: t for t in header.tensors}
    embed = names.get("token_embd.weight")
    vocab = (
        embed.dims[1]
        if embed is not None and len(embed.dims) > 1
        else header.array_lengths.get("tokenizer.ggml.tokens", 0)
    )
    file_type = meta.get("general.file_type")
    return ModelShape(
        format="gguf",
        architecture=arch,
        layers=layers,
        embedding=embd,
        feed_forward=_metadata_int(meta, f"{arch}.feed_forward_length", 0),
        vocab=vocab,
        trained_context=meta.get(f"{arch}.context_length"),
        kv_elements=layers * kv_heads * (head_k + head_v),
        weights_bytes=sum(t.nbytes for t in header.tensors),
        input_bytes=embed.nbytes if embed is not None else 0,
        tied_output="output.weight" not in names,
        dtype=FILE_TYPES.get(int(file_type), str(file_type)) if file_type is not None else "",
    )


def shape_of_safetensors(headers: list[safetensors_header.Header], config: dict[str, Any]) -> ModelShape:
    """The model of a Transformers checkpoint: its shards' headers and its config.json."""
    cfg = config.get("text_config", config)  # multimodal configs nest the language model's

    def need(key: str) -> int:
        if not isinstance(cfg.get(key), int):
            raise BadHeader(f"config.json has no {key}")
        return int(cfg[key])

    layers, hidden, heads = need("num_hidden_layers"), need("hidden_size"), need("num_attention_heads")
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    tensors = [t for h in headers for t in h.tensors]
    embed = next((t for t in tensors if t.name.endswith("embed_tokens.weight")), None)
    return ModelShape(
        format="safetensors",
        architecture=str((cfg.get("architectures") or config.get("architectures") or [""])[0]),
        layers=layers,
        embedding=hidden,
        feed_forward=int(cfg.get("intermediate_size") or 0),
        vocab=int(cfg.get("vocab_size") or 0),
        trained_context=cfg.get("max_position_embeddings"),
        kv_elements=layers * kv_heads * head_dim * 2,
        weights_bytes=sum(t.nbytes for t in tensors),
        input_bytes=embed.nbytes if embed is not None else 0,
        tied_output=bool(cfg.get("tie_word_embeddings", False)),
        dtype=str(cfg.get("torch_dtype") or cfg.get("dtype") or (tensors[0].dtype if tensors else "")),
    )


def _cells_per_slot(s: LlamaCppSettings) -> int:
    per_slot = max(s.ctx_size // s.parallel, 1)
    return math.ceil(per_slot / KV_CELL_PAD) * KV_CELL_PAD


def _cache_bytes(kind: str) -> float:
    if kind not in CACHE_TYPE_BYTES:
        raise ValueError(f"unknown llama.cpp cache type {kind!r}")
    return CACHE_TYPE_BYTES[kind]


def llamacpp(shape: ModelShape, s: LlamaCppSettings, *, on_gpu: bool = True) -> Footprint:
    """What llama.cpp allocates for the model: on the GPU with all of `-ngl`'s layers (the
    default, -ngl 99), or (`on_gpu=False`) on the CPU, as the calibration measures it."""
    offloaded = min(max(s.gpu_layers, 0), shape.layers + 1) if on_gpu else shape.layers + 1
    layer_part = min(offloaded, shape.layers) / shape.layers
    output_bytes = shape.input_bytes if shape.tied_output else 0
    body = shape.weights_bytes - shape.input_bytes
    if on_gpu:
        # The output layer (and with it the tied embedding's copy) goes with the last of -ngl.
        output_on = offloaded > shape.layers
        weights = body * layer_part + (output_bytes if output_on else 0)
    else:
        weights = shape.weights_bytes
    cells = _cells_per_slot(s)
    kv_per_element = (_cache_bytes(s.cache_type_k) + _cache_bytes(s.cache_type_v)) / 2
    kv = shape.kv_elements * kv_per_element * cells * s.parallel * layer_part
    ubatch = min(s.ubatch, s.ctx_size)
    quantised = s.cache_type_k not in ("f16", "f32", "bf16")
    compute = ubatch * 4 * (3 * shape.feed_forward + (3 if quantised else 4) * shape.embedding)
    compute += cells * ubatch * 2
    if on_gpu and offloaded == 0:
        compute = 0
    overhead = CUDA_OVERHEAD_GIB * GIB if on_gpu and offloaded > 0 else 0.0
    return Footprint(
        weights_gib=_gib(weights),
        kv_cache_gib=_gib(kv),
        compute_gib=_gib(compute),
        overhead_gib=_gib(overhead),
        total_gib=_gib(weights + kv + compute + overhead),
    )


def vllm(shape: ModelShape, s: VllmSettings) -> Footprint:
    """The least vLLM needs to start: the weights, one whole sequence of `--max-model-len` in
    the KV cache (it refuses to start with less) and its runtime. Whatever more the card's
    `--gpu-memory-utilization` share holds, vLLM fills with KV cache for more sequences."""
    dtype = shape.dtype if s.kv_cache_dtype == "auto" else s.kv_cache_dtype
    kv_bytes = VLLM_DTYPE_BYTES.get(dtype.removeprefix("torch."), 2)
    tokens = s.max_model_len or shape.trained_context or 4096
    kv = shape.kv_elements * kv_bytes * tokens
    runtime = VLLM_RUNTIME_GIB * GIB
    overhead = CUDA_OVERHEAD_GIB * GIB
    return Footprint(
        weights_gib=_gib(shape.weights_bytes),
        kv_cache_gib=_gib(kv),
        compute_gib=_gib(runtime),
        overhead_gib=_gib(overhead),
        total_gib=_gib(shape.weights_bytes + kv + runtime + overhead),
    )


def largest_context(shape: ModelShape, s: LlamaCppSettings, card_gib: float) -> int | None:
    """The largest context per slot (a multiple of 256) with which the model fits `card_gib`
    at the same slots and cache type; None when not even 256 does."""
    best = None
    low, high = 1, max(1, (shape.trained_context or 131072) // KV_CELL_PAD)
    while low <= high:
        mid = (low + high) // 2
        tokens = mid * KV_CELL_PAD
        trial = s.model_copy(update={"ctx_size": tokens * s.parallel})
        if llamacpp(shape, trial).total_gib <= card_gib:
            best, low = tokens, mid + 1
        else:
            high = mid - 1
    return best
