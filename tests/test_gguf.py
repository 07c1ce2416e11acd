"""GGUF import (tl.gguf) on tiny files written here with gguf.GGUFWriter, as llama.cpp's converter
writes them: random weights in F32, F16, Q8_0 and Q4_1, Q/K rows in llama.cpp's order, and a tiny
byte-level BPE vocabulary with merges. No download."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sample_texts

from tl.errors import InputError
from tl.hf import load_hf
from tl.model import ModelArgs, Transformer
from tl.tokenizer import load_tokenizer

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as Q  # noqa: E402
from gguf.quants import dequantize, quantize  # noqa: E402

from tl.gguf import TOP_LEVEL_NAMES, convert, permute_qk, unpermute_qk  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HF_TO_GGUF = {hf: name for name, hf in TOP_LEVEL_NAMES.items()}
BLOCK = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gguf_name(key: str) -> str:
    if key in HF_TO_GGUF:
        return HF_TO_GGUF[key]
    _, _, layer, *module, _ = key.split(".")  # model.layers.{i}.{module}.weight
    return f"blk.{layer}.{BLOCK['.'.join(module)]}.weight"


def tensor_type(key: str) -> Q:
    """SmolLM2's mix: F32 norms, Q8_0 embedding, Q4_1 elsewhere; one F16 matrix for coverage."""
    if key.endswith("norm.weight"):
        return Q.F32
    if key == "model.embed_tokens.weight":
        return Q.Q8_0
    if key.endswith("v_proj.weight"):
        return Q.F16
    return Q.Q4_1


def bpe_vocabulary(directory):
    """(tokens by id, merges "a b", llama.cpp token types) of a tokenizer.json."""
    spec = json.loads((Path(directory) / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    special = {t["content"] for t in spec["added_tokens"] if t["special"]}
    return tokens, merges, [3 if t in special else 1 for t in tokens]


def write_gguf(
    path, model: Transformer, bpe_dir, *, arch="llama", vocab_size=None, types=tensor_type
) -> dict:
    """A GGUF file of `model` and the BPE tokenizer in `bpe_dir`; returns the state dict the
    file holds after its own quantisation (what the import must reproduce exactly)."""
    args = model.args
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(args.num_hidden_layers)
    writer.add_context_length(args.max_position_embeddings)
    writer.add_embedding_length(args.hidden_size)
    writer.add_feed_forward_length(args.intermediate_size)
    writer.add_head_count(args.num_attention_heads)
    writer.add_head_count_kv(args.num_key_value_heads)
    writer.add_rope_freq_base(args.rope_theta)
    writer.add_layer_norm_rms_eps(args.rms_norm_eps)
    writer.add_rope_dimension_count(args.head_dim)
    tokens, merges, token_types = bpe_vocabulary(bpe_dir)
    writer.add_vocab_size(vocab_size or len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)  # as SmolLM2's file: pad = EOS
    writer.add_add_bos_token(False)
    stored = {}
    for key, value in model.state_dict().items():
        w = value.float().numpy()
        name = gguf_name(key)
        if name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = args.num_attention_heads if "attn_q" in name else args.num_key_value_heads
            w = permute_qk(w, heads)  # llama.cpp's converter reorders Q/K rows for its RoPE
        qtype = types(key)
        if qtype == Q.F32:
            data = w
        elif qtype == Q.F16:
            data = w.astype(np.float16)
        elif qtype == Q.I8:
            data = np.zeros(w.shape, dtype=np.int8)
        else:
            data = quantize(w, qtype)
        writer.add_tensor(name, data, raw_dtype=qtype if qtype not in (Q.F32, Q.F16, Q.I8) else None)
        if qtype != Q.I8:
            back = dequantize(data if qtype != Q.F16 else data.view(np.uint8).view(np.float16), qtype)
            back = np.asarray(back, dtype=np.float32).reshape(w.shape)
            if name.endswith(("attn_q.weight", "attn_k.weight")):
                back = unpermute_qk(back, heads)
            stored[key] = torch.from_numpy(back.copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored


@pytest.fixture
def tiny_llama(tiny_bpe_dir):
    def make(tied: bool = True) -> Transformer:
        args = ModelArgs(
            vocab_size=load_tokenizer(tiny_bpe_dir).vocab_size,
            hidden_size=64,
            intermediate_size=128,  # quantised rows hold whole blocks of 32
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            rope_theta=1e5,
            rms_norm_eps=1e-5,
            max_position_embeddings=256,
            initializer_range=0.1,
            tie_word_embeddings=tied,
        )
        return Transformer.from_config(args, seed=7).eval()

    return make


def test_permutation_round_trip():
    w = np.arange(8 * 3 * 5, dtype=np.float32).reshape(24, 5)
    assert np.array_equal(unpermute_qk(permute_qk(w, 3), 3), w)
    # llama.cpp interleaves each head's two halves: row 1 of head 0 is the first row of its second half
    assert np.array_equal(permute_qk(w, 3)[1], w[4])


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_import_gives_the_models_logits_and_tokenizer(tied, tiny_llama, tiny_bpe_dir, tmp_path):
    model = tiny_llama(tied)
    stored = write_gguf(tmp_path / "m.gguf", model, tiny_bpe_dir)
    args = convert(str(tmp_path / "m.gguf"), str(tmp_path / "hf"))
    assert args.tie_word_embeddings is tied
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    # the reference: the random model with each weight as the file holds it (quantised)
    reference = Transformer.from_config(model.args, seed=7).eval()
    reference.load_state_dict(stored, strict=True)
    assert not torch.equal(
        stored["model.layers.0.self_attn.q_proj.weight"],
        model.state_dict()["model.layers.0.self_attn.q_proj.weight"],
    )
    imported = load_hf(tmp_path / "hf").eval()
    ids = torch.randint(3, model.args.vocab_size, (2, 17), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(imported(ids), reference(ids), atol=1e-5, rtol=0)
        assert (imported(ids) - model(ids)).abs().max() > 1e-3  # quantisation is visible: the check has teeth

    ours, source = load_tokenizer(tmp_path / "hf"), load_tokenizer(tiny_bpe_dir)
    assert (ours.bos_id, ours.eos_id, ours.pad_id, ours.add_bos) == (1, 2, 0, False)
    for text in sample_texts(40, seed=3) + ["héllo 東京 🙂 2024"]:
        assert ours.encode_chat(text) == source.encode_chat(text)
        assert ours.decode(ours.encode(text)) == text

    transformers = pytest.importorskip("transformers")
    theirs = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, reference(ids), atol=1e-5, rtol=0)


def _one_line_error(gguf_file, out) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tl.gguf", str(gguf_file), str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("tl.gguf: "), done.stderr
    return done.stderr


def test_bad_files_get_one_line(tiny_llama, tiny_bpe_dir, tmp_path):
    model = tiny_llama()
    good = tmp_path / "good.gguf"
    write_gguf(good, model, tiny_bpe_dir)
    data = good.read_bytes()

    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    assert "truncated.gguf: not a readable GGUF file (truncated or corrupt?)" in _one_line_error(
        truncated, tmp_path / "o1"
    )
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGML" + data[4:200])
    assert "corrupt.gguf: not a readable GGUF file" in _one_line_error(corrupt, tmp_path / "o2")

    gemma = tmp_path / "gemma.gguf"
    write_gguf(gemma, model, tiny_bpe_dir, arch="gemma")
    assert "expected general.architecture 'llama', found 'gemma'" in _one_line_error(gemma, tmp_path / "o3")

    odd_type = tmp_path / "i8.gguf"
    write_gguf(
        odd_type, model, tiny_bpe_dir, types=lambda k: Q.I8 if k == "model.norm.weight" else tensor_type(k)
    )
    assert "output_norm.weight has type I8, which the gguf package cannot dequantize" in _one_line_error(
        odd_type, tmp_path / "o4"
    )

    vocab = tmp_path / "vocab.gguf"
    write_gguf(vocab, model, tiny_bpe_dir, vocab_size=999)
    assert "llama.vocab_size is 999 but tokenizer.ggml.tokens holds" in _one_line_error(
        vocab, tmp_path / "o5"
    )

    with pytest.raises(FileNotFoundError, match="no such GGUF file"):
        convert(str(tmp_path / "missing.gguf"), str(tmp_path / "o6"))
    with pytest.raises(InputError):
        convert(str(corrupt), str(tmp_path / "o7"))
