"""GGUF files that are header-true copies of real models, their tensor data a hole in a sparse
file: llama.cpp loads them (every weight zero) and reports the buffers it allocates, and the hub
serves them, at the cost of a few MiB of disk for a model of many GiB.

The architectures are those of the models' own `config.json`; the quantisation mix is
llama.cpp's (`llama_model_quantize_impl`: Q4_K_M gives `attn_v` and `ffn_down` Q6_K on the
layers `use_more_bits` picks and `output` Q6_K, the rest Q4_K; Q8_0 is Q8_0 throughout; norms
stay F32). Written with `gguf`, llama.cpp's own writer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from hearth_sim.weights import cache_dir

Q = gguf.GGMLQuantizationType


@dataclass(frozen=True)
class Architecture:
    name: str  # the file's general.name
    arch: str  # llama.cpp's architecture: llama, qwen2
    layers: int
    embd: int
    ff: int
    heads: int
    kv_heads: int
    vocab: int
    context: int
    rope_base: float = 10000.0
    qkv_bias: bool = False  # Qwen2 has biases on q, k and v
    tied: bool = False  # the output layer is the token embedding

    @property
    def head_dim(self) -> int:
        return self.embd // self.heads


# From each model's config.json on the Hugging Face Hub.
ARCHITECTURES = {
    "llama-3.1-8b": Architecture(
        "Meta Llama 3.1 8B Instruct", "llama", 32, 4096, 14336, 32, 8, 128256, 131072, 500000.0
    ),
    "qwen2.5-7b": Architecture(
        "Qwen2.5 7B Instruct", "qwen2", 28, 3584, 18944, 28, 4, 152064, 32768, 1e6, qkv_bias=True
    ),
    "qwen2.5-14b": Architecture(
        "Qwen2.5 14B Instruct", "qwen2", 48, 5120, 13824, 40, 8, 152064, 32768, 1e6, qkv_bias=True
    ),
    "mistral-7b": Architecture(
        "Mistral 7B Instruct v0.3", "llama", 32, 4096, 14336, 32, 8, 32768, 32768, 1e6
    ),
}

FILE_TYPES = {"Q4_K_M": gguf.LlamaFileType.MOSTLY_Q4_K_M, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}


def _more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's use_more_bits(i_layer, n_layers)."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def _tensors(a: Architecture, quant: str) -> list[tuple[str, tuple[int, ...], gguf.GGMLQuantizationType]]:
    """(name, shape in ggml's order — ne0 first, type) of every tensor, as convert_hf_to_gguf and
    llama-quantize leave them."""
    base, high = (Q.Q4_K, Q.Q6_K) if quant == "Q4_K_M" else (Q.Q8_0, Q.Q8_0)
    kv = a.kv_heads * a.head_dim
    out: list[tuple[str, tuple[int, ...], gguf.GGMLQuantizationType]] = [
        ("token_embd.weight", (a.embd, a.vocab), base),
    ]
    for i in range(a.layers):
        more = high if _more_bits(i, a.layers) else base
        p = f"blk.{i}."
        out += [
            (p + "attn_norm.weight", (a.embd,), Q.F32),
            (p + "attn_q.weight", (a.embd, a.embd), base),
            (p + "attn_k.weight", (a.embd, kv), base),
            (p + "attn_v.weight", (a.embd, kv), more),
            (p + "attn_output.weight", (a.embd, a.embd), base),
            (p + "ffn_norm.weight", (a.embd,), Q.F32),
            (p + "ffn_gate.weight", (a.embd, a.ff), base),
            (p + "ffn_up.weight", (a.embd, a.ff), base),
            (p + "ffn_down.weight", (a.ff, a.embd), more),
        ]
        if a.qkv_bias:
            out += [
                (p + "attn_q.bias", (a.embd,), Q.F32),
                (p + "attn_k.bias", (kv,), Q.F32),
                (p + "attn_v.bias", (kv,), Q.F32),
            ]
    out.append(("output_norm.weight", (a.embd,), Q.F32))
    if not a.tied:
        out.append(("output.weight", (a.embd, a.vocab), high))
    return out


def _nbytes(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape)) // block * size


def write(path: Path, model: str, quant: str = "Q4_K_M") -> Path:
    """A sparse GGUF of `model` (a key of ARCHITECTURES) at `quant` (Q4_K_M or Q8_0)."""
    a = ARCHITECTURES[model]
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(path, a.arch)
    w.add_name(a.name)
    w.add_file_type(FILE_TYPES[quant])
    w.add_block_count(a.layers)
    w.add_context_length(a.context)
    w.add_embedding_length(a.embd)
    w.add_feed_forward_length(a.ff)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_rope_dimension_count(a.head_dim)
    w.add_rope_freq_base(a.rope_base)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(a.vocab)
    # A SentencePiece-style vocabulary of placeholder pieces: llama.cpp needs as many tokens as
    # the embedding has rows, not real ones, to load.
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>", *(f"t{i}" for i in range(3, a.vocab))])
    w.add_token_scores([0.0] * a.vocab)
    w.add_token_types([2, 3, 3, *([1] * (a.vocab - 3))])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    total = 0
    for name, shape, qtype in _tensors(a, quant):
        nbytes = _nbytes(shape, qtype)
        # The writer takes numpy's order (the last dimension first in ggml's) and reverses it.
        w.add_tensor_info(name, tuple(reversed(shape)), np.dtype(np.float32), nbytes, raw_dtype=qtype)
        total += w.ggml_pad(nbytes, w.data_alignment)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    # The tensor data: a hole the size of all tensors after the aligned header.
    with open(path, "r+b") as f:
        f.seek(0, os.SEEK_END)
        start = w.ggml_pad(f.tell(), w.data_alignment)
        f.truncate(start + total)
    return path


VERSION = 1  # bump when what `write` produces changes: the cache keeps files by it


def cached(model: str, quant: str = "Q4_K_M") -> Path:
    """The synthetic file from the shared cache (written once per machine: a 152 k-token
    vocabulary takes seconds to write; the file costs a few MiB of disk whatever its size)."""
    path = cache_dir() / "synthetic" / f"{model}-{quant}-v{VERSION}.gguf"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    write(tmp, model, quant)
    os.replace(tmp, path)  # atomic: a parallel writer's file is the same
    return path
