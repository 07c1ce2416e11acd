"""HF checkpoint directories: `config.json`, safetensors (one file or an index) and the
tokenizer's files (`tokenizer.model`, or `tokenizer.json` + `tokenizer_config.json`). Read into a
`Transformer`, written from a state dict or from an FSDP2-sharded model; layout:
docs/ARCHITECTURE.md, "Checkpoint layout".
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import torch

from tl.checkpoint import swap_in
from tl.dist import DistInfo, barrier, full_state_dict
from tl.errors import InputError
from tl.model import DTYPES, ModelArgs, Transformer
from tl.tokenizer import BPE_FILE, SENTENCEPIECE_FILE, load_tokenizer

# Old HF LLaMA checkpoints carry the (derived) RoPE table; HF ignores it too.
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _some(keys, n: int = 8) -> str:
    keys = sorted(keys)
    more = f" (and {len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def read_config(path: str) -> ModelArgs:
    """`ModelArgs` of an HF checkpoint directory's config.json."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"{config_file}: no config.json (expected an HF checkpoint directory)")
    try:
        with open(config_file) as f:
            config = json.load(f)
    except ValueError as e:
        raise InputError(f"{config_file}: not valid JSON ({e})") from None
    try:
        return ModelArgs.from_hf_config(config, source=config_file)
    except ValueError as e:
        raise InputError(str(e)) from None


def has_tokenizer(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, name)) for name in (SENTENCEPIECE_FILE, BPE_FILE))


def check_vocab(vocab_size: int, where: str, tokenizer) -> None:
    """Raises unless `tokenizer` (a loaded tokenizer, or None) has exactly `vocab_size` ids."""
    if tokenizer is not None and tokenizer.vocab_size != vocab_size:
        raise InputError(
            f"vocab mismatch: tokenizer {tokenizer.model_path} has {tokenizer.vocab_size} tokens but "
            f"{where} says vocab_size={vocab_size}; they must be equal"
        )


def checkpoint_files(path: str) -> dict[str, str]:
    """{tensor name: safetensors file} of a checkpoint directory (one file, or an index)."""
    from safetensors import safe_open

    single = os.path.join(path, "model.safetensors")
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(single):
        with safe_open(single, framework="pt") as f:
            return {key: single for key in f.keys()}
    if not os.path.isfile(index):
        raise FileNotFoundError(
            f"{path}: expected model.safetensors or model.safetensors.index.json, "
            f"found {sorted(os.listdir(path))}"
        )
    with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    shards = sorted(set(weight_map.values()))
    missing = [s for s in shards if not os.path.isfile(os.path.join(path, s))]
    if missing:
        raise FileNotFoundError(f"{index} lists shard(s) {missing} that do not exist in {path}")
    for shard in shards:  # the index must agree with the files' own headers
        with safe_open(os.path.join(path, shard), framework="pt") as f:
            absent = {k for k, s in weight_map.items() if s == shard} - set(f.keys())
        if absent:
            raise InputError(f"{index} places {_some(absent)} in {shard}, which does not contain them")
    return {key: os.path.join(path, shard) for key, shard in weight_map.items()}


def load_hf(path, dtype: torch.dtype | None = None, device="cpu", tokenizer=None) -> Transformer:
    """An HF LLaMA directory as a `Transformer` built on the meta device, tensors assigned (so on
    CPU in the stored dtype memory-mapped). `tokenizer` (default: the one beside, if any) is
    vocab-checked. Key names and shapes are checked against config.json from the headers before
    any tensor is read. A tied checkpoint's `lm_head.weight`, if stored, is ignored (as HF does)."""
    from safetensors import safe_open

    path = os.fspath(path)
    args = read_config(path)
    if tokenizer is None and has_tokenizer(path):
        tokenizer = load_tokenizer(path)
    check_vocab(args.vocab_size, os.path.join(path, "config.json"), tokenizer)
    with torch.device("meta"):
        model = Transformer(args)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    ignored = _IGNORED_SUFFIXES + (("lm_head.weight",) if args.tie_word_embeddings else ())
    files = {k: f for k, f in checkpoint_files(path).items() if not k.endswith(ignored)}
    problems = []
    if missing := set(expected) - set(files):
        problems.append(f"missing keys: {_some(missing)}")
    if unexpected := set(files) - set(expected):
        where = sorted({os.path.basename(files[k]) for k in unexpected})
        problems.append(f"unexpected keys (in {', '.join(where)}): {_some(unexpected)}")
    by_file: dict[str, list[str]] = {}
    for key, file in files.items():
        if key in expected:
            by_file.setdefault(file, []).append(key)
    for file, keys in by_file.items():
        with safe_open(file, framework="pt") as f:
            for key in keys:
                shape = tuple(f.get_slice(key).get_shape())
                if shape != expected[key]:
                    problems.append(
                        f"{key} in {os.path.basename(file)} has shape {list(shape)}, "
                        f"the config implies {list(expected[key])}"
                    )
    if problems:
        raise InputError(f"checkpoint {path} does not match its config.json:\n  " + "\n  ".join(problems))

    state = {}
    dtype = dtype or DTYPES[args.dtype]
    for file, keys in by_file.items():
        with safe_open(file, framework="pt", device="cpu") as f:
            for key in keys:  # get_tensor maps the file; .to() copies only if dtype/device differ
                state[key] = f.get_tensor(key).to(device=device, dtype=dtype)
    model.load_state_dict(state, strict=True, assign=True)
    model.args.dtype = _dtype_name(model.output_weight().dtype)
    return model


def save_hf(
    state_dict: dict[str, torch.Tensor],
    args: ModelArgs,
    path,
    max_shard_size: int = 5 * 10**9,
    tokenizer=None,
) -> None:
    """An HF checkpoint directory from a full state dict, in key order, a new shard whenever the
    next tensor would pass `max_shard_size` bytes; the tokenizer's files are copied beside."""
    from safetensors.torch import save_file

    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    shards: list[list[str]] = [[]]
    sizes = [0]
    for key, tensor in state_dict.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and sizes[-1] + nbytes > max_shard_size:
            shards.append([])
            sizes.append(0)
        shards[-1].append(key)
        sizes[-1] += nbytes
    # Unlink the old files first: the mmaps of a model loaded from this very directory stay
    # valid, which rewriting a mapped file in place would not.
    for name in os.listdir(path):
        if name.startswith("model") and name.endswith((".safetensors", ".index.json")):
            os.remove(os.path.join(path, name))
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, keys in zip(names, shards):
        tensors = {k: state_dict[k].detach().to("cpu").contiguous() for k in keys}
        save_file(tensors, os.path.join(path, name), metadata={"format": "pt"})
    if len(shards) > 1:
        weight_map = {k: name for name, keys in zip(names, shards) for k in keys}
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": sum(sizes)}, "weight_map": weight_map}, f, indent=2)
    args = replace(args, dtype=_dtype_name(next(iter(state_dict.values())).dtype))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(args.to_hf_config(), f, indent=2)
    if tokenizer is not None:
        check_vocab(args.vocab_size, os.path.join(path, "config.json"), tokenizer)
        tokenizer.save(path)


def export_hf(model, path: str, info: DistInfo, *, tokenizer=None, dtype: torch.dtype | None = None):
    """An HF directory from a possibly sharded model: gathered to rank 0, written beside and
    renamed into place; `dtype` casts the weights (bf16 for a 7B export). Every rank must call it."""
    state = full_state_dict(model, info)
    if info.is_main:
        if dtype is not None:
            state = {k: v.to(dtype) for k, v in state.items()}
        tmp = path.rstrip("/") + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        save_hf(state, model.args, tmp, tokenizer=tokenizer)
        swap_in(tmp, path.rstrip("/"))
    barrier(info)
