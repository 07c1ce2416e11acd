"""Import a llama.cpp GGUF file of a LLaMA model as an HF checkpoint directory.

    python -m tl.gguf MODEL.gguf OUT_DIR     # writes config.json, model.safetensors, tokenizer.json

Needs the `gguf` package (llama.cpp's own reader): `pip install -e ".[gguf]"`. Every tensor type
its dequantizer supports is read (F32, F16, BF16, Q4_0/1, Q5_0/1, Q8_0, the K-quants, ...) and
written as float32, which holds each dequantized value exactly. Two things llama.cpp's converter
changed are undone:
- the rows of `attn_q` / `attn_k`, reordered per head for its interleaved RoPE, go back to HF's
  rotate-half order (`unpermute_qk`);
- the tokenizer (a byte-level BPE vocabulary and merges in the metadata) is rebuilt as a
  `tokenizers` tokenizer.json, with its special tokens in tokenizer_config.json.
A file without `output.weight` has a tied output layer (`tie_word_embeddings: true`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

from tl.errors import InputError
from tl.hf import save_hf
from tl.model import ModelArgs
from tl.tokenizer import BPE_CONFIG_FILE, BPE_FILE

# GGUF tensor name -> HF name; per block, `blk.{i}.` -> `model.layers.{i}.`.
TOP_LEVEL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}

# tokenizer.ggml.pre -> the regex llama.cpp splits text with before byte-level BPE (None: GPT-2's).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS = {
    "default": None,
    "gpt2": None,
    "smollm": None,
    "llama-bpe": LLAMA3_SPLIT,
    "llama3": LLAMA3_SPLIT,
}
DIGITS_ONE_BY_ONE = ("smollm",)  # llama.cpp splits every digit on its own first

TOKEN_CONTROL = 3  # llama.cpp's token types: 1 normal, 3 control (special), 4 user-defined
TOKEN_USER_DEFINED = 4


def unpermute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's row order of a Q or K projection [rows, cols]: its converter writes each
    head's rows as (pairs, 2) -> (2, pairs) swapped for interleaved RoPE; HF's rotate-half wants
    the first halves then the second halves of each head back."""
    rows, cols = w.shape
    per_head = rows // n_heads
    return w.reshape(n_heads, per_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def permute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's order (its converter's `permute`), the inverse of `unpermute_qk`: for tests."""
    rows, cols = w.shape
    per_head = rows // n_heads
    return w.reshape(n_heads, 2, per_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


class GGUFFile:
    """A GGUF file opened for import: metadata fields by name, tensors, and the checks that turn a
    bad file into one `InputError` naming it."""

    def __init__(self, path: str):
        try:
            from gguf import GGUFReader
        except ImportError:
            raise SystemExit('tl.gguf needs the gguf package: pip install -e ".[gguf]"') from None
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"{self.path}: no such GGUF file")
        try:
            self.reader = GGUFReader(self.path)
        except Exception as e:  # a truncated or corrupt file fails in many ways inside the reader
            raise InputError(
                f"{self.path}: not a readable GGUF file (truncated or corrupt?): {type(e).__name__}: {e}"
            ) from None
        self.tensors = {t.name: t for t in self.reader.tensors}
        data_end = max((t.data_offset + t.n_bytes for t in self.reader.tensors), default=0)
        if data_end > os.path.getsize(self.path):
            raise InputError(
                f"{self.path}: truncated: its tensors need {data_end} bytes, the file has "
                f"{os.path.getsize(self.path)}"
            )

    def get(self, key: str, default=None):
        """The value of metadata field `key` (a scalar, string or list), or `default`."""
        field = self.reader.fields.get(key)
        return default if field is None else field.contents()

    def require(self, key: str):
        value = self.get(key)
        if value is None:
            raise InputError(f"{self.path}: expected the metadata field {key!r}; it is missing")
        return value

    def tensor(self, name: str) -> np.ndarray:
        """Tensor `name` dequantized to float32, in HF's [out, in] layout."""
        from gguf.quants import dequantize

        t = self.tensors[name]
        try:
            values = dequantize(t.data, t.tensor_type)
        except NotImplementedError:
            raise InputError(
                f"{self.path}: tensor {name} has type {t.tensor_type.name}, which the gguf package "
                f"cannot dequantize"
            ) from None
        shape = tuple(int(n) for n in reversed(t.shape))  # GGUF lists dimensions innermost first
        return np.asarray(values, dtype=np.float32).reshape(shape)


def float32_value(x: float) -> float:
    """A float32 metadata value as the decimal it was written from (1e-05, not 9.999999747e-06)."""
    return float(str(np.float32(x)))


def model_args(f: GGUFFile) -> ModelArgs:
    """ModelArgs of a llama GGUF file's metadata; what the model does not implement is refused."""
    arch = f.require("general.architecture")
    if arch != "llama":
        raise InputError(f"{f.path}: expected general.architecture 'llama', found {arch!r}")
    rope_scaling = f.get("llama.rope.scaling.type", "none")
    if rope_scaling not in ("none", None) or "rope_freqs.weight" in f.tensors:
        raise InputError(
            f"{f.path}: RoPE scaling ({rope_scaling!r}, or a rope_freqs tensor) is not implemented; "
            f"only plain RoPE"
        )
    hidden = int(f.require("llama.embedding_length"))
    heads = int(f.require("llama.attention.head_count"))
    tokens = f.require("tokenizer.ggml.tokens")
    vocab_size = int(f.get("llama.vocab_size", len(tokens)))
    if vocab_size != len(tokens):
        raise InputError(
            f"{f.path}: llama.vocab_size is {vocab_size} but tokenizer.ggml.tokens holds {len(tokens)} tokens; "
            f"they must be equal"
        )
    return ModelArgs(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=int(f.require("llama.feed_forward_length")),
        num_hidden_layers=int(f.require("llama.block_count")),
        num_attention_heads=heads,
        num_key_value_heads=int(f.get("llama.attention.head_count_kv", heads)),
        head_dim=int(f.get("llama.attention.key_length", hidden // heads)),
        rms_norm_eps=float32_value(f.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=float32_value(f.get("llama.rope.freq_base", 10000.0)),
        max_position_embeddings=int(f.get("llama.context_length", 2048)),
        tie_word_embeddings="output.weight" not in f.tensors,
        bos_token_id=f.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=f.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=f.get("tokenizer.ggml.padding_token_id"),
    )


def hf_name(gguf_name: str) -> str | None:
    """The HF name of a GGUF tensor, or None for one this model does not have."""
    if gguf_name in TOP_LEVEL_NAMES:
        return TOP_LEVEL_NAMES[gguf_name]
    parts = gguf_name.split(".")  # blk.{i}.{name}.weight
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in BLOCK_NAMES and parts[3] == "weight":
        return f"model.layers.{parts[1]}.{BLOCK_NAMES[parts[2]]}.weight"
    return None


def state_dict(f: GGUFFile, args: ModelArgs) -> dict[str, torch.Tensor]:
    """Every tensor as float32 under its HF name, Q and K rows back in HF's order."""
    unknown = [name for name in f.tensors if hf_name(name) is None]
    if unknown:
        raise InputError(f"{f.path}: tensors a LLaMA does not have: {', '.join(sorted(unknown)[:8])}")
    state = {}
    for name in f.tensors:
        w = f.tensor(name)
        if ".attn_q." in name:
            w = unpermute_qk(w, args.num_attention_heads)
        elif ".attn_k." in name:
            w = unpermute_qk(w, args.num_key_value_heads)
        state[hf_name(name)] = torch.from_numpy(np.array(w, dtype=np.float32, order="C"))  # a writable copy
    return state


def tokenizer_files(f: GGUFFile, args: ModelArgs) -> tuple[dict, dict]:
    """(tokenizer.json, tokenizer_config.json) of the file's byte-level BPE vocabulary."""
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    kind = f.require("tokenizer.ggml.model")
    if kind != "gpt2":
        raise InputError(
            f"{f.path}: tokenizer.ggml.model is {kind!r}; only byte-level BPE ('gpt2': SmolLM, "
            f"LLaMA-3) is imported"
        )
    pre = f.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise InputError(
            f"{f.path}: pre-tokenizer {pre!r} is not known here; expected one of {sorted(PRE_TOKENIZERS)}"
        )
    tokens = list(f.require("tokenizer.ggml.tokens"))
    types = list(f.get("tokenizer.ggml.token_type", [1] * len(tokens)))
    merges = [tuple(m.split(" ", 1)) for m in f.require("tokenizer.ggml.merges")]

    tk = HFTokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    steps = []
    if pre in DIGITS_ONE_BY_ONE:
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    if PRE_TOKENIZERS[pre] is None:
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    else:
        steps.append(pre_tokenizers.Split(Regex(PRE_TOKENIZERS[pre]), behavior="isolated"))
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tk.decoder = decoders.ByteLevel()
    control = [t for t, kind in zip(tokens, types) if kind == TOKEN_CONTROL]
    user_defined = [t for t, kind in zip(tokens, types) if kind == TOKEN_USER_DEFINED]
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    tk.add_tokens([AddedToken(t, special=False, normalized=False) for t in user_defined])

    def token(key: str) -> str | None:
        token_id = f.get(key)
        return tokens[token_id] if token_id is not None and 0 <= token_id < len(tokens) else None

    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": token("tokenizer.ggml.bos_token_id"),
        "eos_token": token("tokenizer.ggml.eos_token_id"),
        "unk_token": token("tokenizer.ggml.unknown_token_id"),
        "pad_token": token("tokenizer.ggml.padding_token_id"),
        "add_bos_token": bool(f.get("tokenizer.ggml.add_bos_token", False)),
        "model_max_length": args.max_position_embeddings,
    }
    if (template := f.get("tokenizer.chat_template")) is not None:
        config["chat_template"] = template
    return json.loads(tk.to_str()), config


def convert(gguf_path: str, out: str) -> ModelArgs:
    """Write the HF directory `out` (config.json, model.safetensors, tokenizer.json,
    tokenizer_config.json) of a llama GGUF file; returns its ModelArgs."""
    f = GGUFFile(gguf_path)
    args = model_args(f)
    tokenizer, tokenizer_config = tokenizer_files(f, args)
    state = state_dict(f, args)
    save_hf(state, args, out)
    with open(os.path.join(out, BPE_FILE), "w", encoding="utf-8") as fh:
        json.dump(tokenizer, fh, ensure_ascii=False)
    with open(os.path.join(out, BPE_CONFIG_FILE), "w", encoding="utf-8") as fh:
        json.dump(tokenizer_config, fh, indent=2, ensure_ascii=False)
    return args


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m tl.gguf", description=__doc__.split("\n\n")[0])
    p.add_argument("gguf", help="a llama GGUF file")
    p.add_argument("out", help="the HF directory to write")
    a = p.parse_args(argv)
    try:
        args = convert(a.gguf, a.out)
    except (InputError, FileNotFoundError) as e:
        sys.exit(f"tl.gguf: {e}")
    print(
        f"wrote {a.out}: {args.num_hidden_layers} layers, hidden {args.hidden_size}, vocab {args.vocab_size}, "
        f"{'tied' if args.tie_word_embeddings else 'untied'} embeddings"
    )


if __name__ == "__main__":
    main()
