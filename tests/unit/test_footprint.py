"""A model's VRAM from its files: the GGUF and safetensors header readers and the footprint
arithmetic, on header-true copies of real architectures."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearth_api import footprint, gguf_header, safetensors_header
from hearth_api.footprint import LlamaCppSettings, VllmSettings
from hearth_api.gguf_header import BadHeader, NeedMore
from hearth_sim import synthetic_gguf
from hearth_sim.weights import SMOLLM2, cached

MiB = 2**20


def _small_gguf() -> bytes:
    """A whole little GGUF (a few tensors, a short vocabulary) for the property test to mangle."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.gguf"
        w = gguf.GGUFWriter(path, "llama")
        w.add_block_count(1)
        w.add_token_list(["a", "b", "c"])
        w.add_tensor_info("token_embd.weight", (3, 32), np.dtype(np.float32), 3 * 32 * 4)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        w.close()
        return path.read_bytes()


_SMALL_GGUF = _small_gguf()


def header_of(path: Path) -> gguf_header.Header:
    with path.open("rb") as f:
        return gguf_header.parse(f.read(8 * MiB))


@pytest.fixture(scope="module")
def llama8b() -> Path:
    return synthetic_gguf.cached("llama-3.1-8b", "Q4_K_M")


@pytest.fixture(scope="module")
def qwen14b() -> Path:
    return synthetic_gguf.cached("qwen2.5-14b", "Q4_K_M")


def test_the_reader_agrees_with_llama_cpps_own(llama8b: Path) -> None:
    ours = header_of(llama8b)
    theirs = gguf.GGUFReader(llama8b)
    assert ours.data_offset == theirs.data_offset
    assert [(t.name, t.nbytes, t.offset) for t in ours.tensors] == [
        (t.name, int(t.n_bytes), int(t.data_offset) - theirs.data_offset) for t in theirs.tensors
    ]
    assert ours.architecture == "llama"
    assert ours.metadata["llama.block_count"] == 32
    assert ours.array_lengths["tokenizer.ggml.tokens"] == 128256
    gguf_header.check_size(ours, llama8b.stat().st_size)


def test_the_type_table_is_ggmls() -> None:
    for type_id, (name, block, size) in gguf_header.GGML_TYPES.items():
        qtype = gguf.GGMLQuantizationType(type_id)
        assert qtype.name == name
        assert gguf.GGML_QUANT_SIZES[qtype] == (block, size)


def test_a_short_prefix_says_how_much_more_to_read(llama8b: Path) -> None:
    data = llama8b.open("rb").read(64 * 1024)
    with pytest.raises(NeedMore) as need:
        gguf_header.parse(data)
    assert need.value.size > len(data)
    whole = llama8b.open("rb").read(need.value.size * 64)
    assert gguf_header.parse(whole).data_offset <= len(whole)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"PK\x03\x04" + b"\0" * 60, "not a GGUF file"),
        (b"GGUF" + struct.pack("<I", 7) + b"\0" * 16, "GGUF version 7"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 2**40), "claims"),
        (b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 1) + b"k" + struct.pack("<I", 42), "unknown value type 42"),
    ],
)  # fmt: skip
def test_what_is_not_gguf_is_named(data: bytes, says: str) -> None:
    with pytest.raises(BadHeader, match=says):
        gguf_header.parse(data)


def test_a_header_that_lies_about_its_sizes_is_refused(llama8b: Path) -> None:
    header = header_of(llama8b)
    with pytest.raises(BadHeader, match="the file has 1000000"):
        gguf_header.check_size(header, 1_000_000)


def _settings(context: int, slots: int, cache: str = "f16") -> LlamaCppSettings:
    return LlamaCppSettings(ctx_size=context * slots, parallel=slots, cache_type_k=cache, cache_type_v=cache)


def test_the_kv_cache_is_llama_cpps_arithmetic(llama8b: Path) -> None:
    shape = footprint.shape_of_gguf(header_of(llama8b))
    # 32 layers x 8 KV heads x 128 x (K + V) x 2 bytes = 128 KiB per token.
    assert shape.kv_elements == 32 * 8 * 128 * 2
    assert footprint.llamacpp(shape, _settings(8192, 1)).kv_cache_gib == 1.0
    assert footprint.llamacpp(shape, _settings(4096, 2)).kv_cache_gib == 1.0
    # q8_0 stores 32 values in 34 bytes.
    assert footprint.llamacpp(shape, _settings(8192, 1, "q8_0")).kv_cache_gib == pytest.approx(
        34 / 64, abs=1e-3
    )
    # Each slot's cells are rounded up to 256: 1000 tokens take 1024 cells.
    assert (
        footprint.llamacpp(shape, _settings(1000, 1)).kv_cache_gib
        == footprint.llamacpp(shape, _settings(1024, 1)).kv_cache_gib
    )


def test_the_gpu_holds_all_but_the_input_embedding(llama8b: Path) -> None:
    shape = footprint.shape_of_gguf(header_of(llama8b))
    gpu = footprint.llamacpp(shape, _settings(4096, 1))
    cpu = footprint.llamacpp(shape, _settings(4096, 1), on_gpu=False)
    assert not shape.tied_output
    assert cpu.weights_gib - gpu.weights_gib == pytest.approx(shape.input_bytes / 2**30, abs=2e-3)
    assert gpu.overhead_gib == footprint.CUDA_OVERHEAD_GIB and cpu.overhead_gib == 0
    half = footprint.llamacpp(shape, _settings(4096, 1).model_copy(update={"gpu_layers": 16}))
    assert half.kv_cache_gib == pytest.approx(gpu.kv_cache_gib / 2, abs=1e-3)
    assert half.weights_gib < gpu.weights_gib / 2 + 0.01


def test_a_tied_model_keeps_a_copy_of_its_embedding_on_the_gpu() -> None:
    path = cached(SMOLLM2)
    if path is None:
        pytest.skip("SmolLM2 is not in the cache (the llama.cpp tests fetch it)")
    shape = footprint.shape_of_gguf(header_of(path))
    assert shape.tied_output and shape.dtype == "Q4_1"
    gpu = footprint.llamacpp(shape, _settings(2048, 1))
    assert gpu.weights_gib == pytest.approx(shape.weights_bytes / 2**30, abs=1e-3)


def test_qwen_14b_at_8k_by_two_slots_does_not_fit_a_3070_and_says_what_would(qwen14b: Path) -> None:
    shape = footprint.shape_of_gguf(header_of(qwen14b))
    need = footprint.llamacpp(shape, _settings(8192, 2))
    assert 10.5 < need.total_gib < 12.5
    # Q4_K_M of 14.8 B parameters and the CUDA context: no context length makes it fit 8 GiB.
    assert need.weights_gib + need.overhead_gib > 8
    assert footprint.largest_context(shape, _settings(8192, 2), 8.0) is None
    # Never more than it was trained for: two slots of its whole 32 k fit the 3090.
    assert footprint.largest_context(shape, _settings(8192, 2), 24.0) == shape.trained_context
    fits = footprint.largest_context(shape, _settings(8192, 2), 12.0)
    assert fits is not None and fits % 256 == 0 and 4096 <= fits < 32768
    over = footprint.llamacpp(shape, _settings(fits + 256, 2))
    assert footprint.llamacpp(shape, _settings(fits, 2)).total_gib <= 12.0 < over.total_gib


def _safetensors(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    table, at = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = safetensors_header.DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        table[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + n]}
        at += n
    return _raw(table)


QWEN_7B_CONFIG: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584, "intermediate_size": 18944,
    "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
    "vocab_size": 152064, "max_position_embeddings": 32768, "torch_dtype": "bfloat16",
    "tie_word_embeddings": False,
}  # fmt: skip


def test_vllm_needs_the_weights_and_one_whole_sequence_of_kv_cache() -> None:
    c = QWEN_7B_CONFIG
    shard = _safetensors(
        {
            "model.embed_tokens.weight": ("BF16", [c["vocab_size"], c["hidden_size"]]),
            "lm_head.weight": ("BF16", [c["vocab_size"], c["hidden_size"]]),
            "model.layers.0.mlp.up_proj.weight": ("BF16", [c["intermediate_size"], c["hidden_size"]]),
        }
    )
    header = safetensors_header.parse(shard)
    shape = footprint.shape_of_safetensors([header], c)
    assert shape.weights_bytes == header.nbytes
    # vLLM's page: 2 x 28 layers x 4 KV heads x 128 x 2 bytes = 56 KiB per token.
    need = footprint.vllm(shape, VllmSettings(max_model_len=16384))
    assert need.kv_cache_gib == pytest.approx(56 * 1024 * 16384 / 2**30, abs=1e-3)
    assert need.total_gib > need.weights_gib + need.kv_cache_gib


def _raw(table: object) -> bytes:
    raw = json.dumps(table).encode()
    return struct.pack("<Q", len(raw)) + raw


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (struct.pack("<Q", 2**40), "claim a"),
        (struct.pack("<Q", 5) + b"nope!", "not JSON"),
        (_raw([]), "not a JSON object"),
        (_raw({"w": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 31]}}), "claims 31 bytes"),
        (_raw({"w": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 4]}}), "dtype Q9"),
        (_raw({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
               "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}), "overlap"),
    ],
)  # fmt: skip
def test_what_is_not_safetensors_is_named(data: bytes, says: str) -> None:
    with pytest.raises(BadHeader, match=says):
        safetensors_header.parse(data)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=512),
    cut=st.integers(min_value=0, max_value=4096),
    flips=st.lists(st.integers(0, 4095), max_size=8),
)
def test_any_bytes_are_a_header_more_to_read_or_a_named_refusal(
    data: bytes, cut: int, flips: list[int]
) -> None:
    """Random bytes, and a real header cut short or with bytes flipped: the readers answer with
    a header, NeedMore or BadHeader — never another exception (a crash of the operator)."""
    real = bytearray(_SMALL_GGUF[:cut])
    for at in flips:
        if at < len(real):
            real[at] ^= 0xFF
    for prefix in (data, b"GGUF" + data, bytes(real)):
        for parse in (gguf_header.parse, safetensors_header.parse):
            try:
                parse(prefix)
            except (NeedMore, BadHeader):
                pass
