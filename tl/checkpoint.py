"""Checkpoint I/O: HF safetensors directories (load, save, export from FSDP2) and resumable
training checkpoints (torch.distributed.checkpoint); layouts: docs/ARCHITECTURE.md, "Checkpoint layout".

A training checkpoint is written as `step_N.tmp/`, fsynced, then renamed into place (an existing
copy set aside as `.old` until then), so a crash leaves a complete copy of the step. "Newest" = most
recently saved, so a fresh run in an old directory keeps its own checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
import warnings
from dataclasses import replace

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from tl.dist import DistInfo, barrier, full_state_dict
from tl.model import DTYPES, ModelArgs, Transformer

# Old HF LLaMA checkpoints carry the (derived) RoPE table; HF ignores it too.
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _some(keys, n: int = 8) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" (and {len(keys) - n} more)" if len(keys) > n else "")


def read_config(path: str) -> ModelArgs:
    """`ModelArgs` of an HF checkpoint directory's config.json."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"{config_file}: no config.json (expected an HF checkpoint directory)")
    with open(config_file) as f:
        return ModelArgs.from_hf_config(json.load(f), source=config_file)


def check_vocab(vocab_size: int, where: str, tokenizer) -> None:
    """Raises unless the tokenizer (a `.model` path, an object with `vocab_size`, or None) has
    exactly `vocab_size` pieces."""
    if tokenizer is None:
        return
    if isinstance(tokenizer, (str, os.PathLike)):
        import sentencepiece as spm

        name, size = (
            os.fspath(tokenizer),
            spm.SentencePieceProcessor(model_file=os.fspath(tokenizer)).vocab_size(),
        )
    else:
        name, size = getattr(tokenizer, "model_path", type(tokenizer).__name__), tokenizer.vocab_size
    if size != vocab_size:
        raise ValueError(
            f"vocab mismatch: tokenizer {name} has {size} pieces but {where} says "
            f"vocab_size={vocab_size}; they must be equal"
        )


def checkpoint_files(path: str) -> dict[str, str]:
    """{tensor name: safetensors file} of a checkpoint directory (one file, or an index)."""
    from safetensors import safe_open

    single, index = (
        os.path.join(path, "model.safetensors"),
        os.path.join(path, "model.safetensors.index.json"),
    )
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
            raise ValueError(f"{index} places {_some(absent)} in {shard}, which does not contain them")
    return {key: os.path.join(path, shard) for key, shard in weight_map.items()}


def load_hf(path, dtype: torch.dtype | None = None, device="cpu", tokenizer=None) -> Transformer:
    """An HF LLaMA directory as a `Transformer` built on the meta device, tensors assigned (so on CPU
    in the stored dtype memory-mapped); `tokenizer` (default: the one beside) is vocab-checked. Key
    names and shapes are checked against config.json from the headers before any tensor is read."""
    from safetensors import safe_open

    path = os.fspath(path)
    args = read_config(path)
    beside = os.path.join(path, "tokenizer.model")
    check_vocab(
        args.vocab_size,
        os.path.join(path, "config.json"),
        tokenizer or (beside if os.path.isfile(beside) else None),
    )
    with torch.device("meta"):
        model = Transformer(args)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    files = {k: f for k, f in checkpoint_files(path).items() if not k.endswith(_IGNORED_SUFFIXES)}
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
        raise ValueError(f"checkpoint {path} does not match its config.json:\n  " + "\n  ".join(problems))
    state, dtype = {}, dtype or DTYPES[args.dtype]
    for file, keys in by_file.items():
        with safe_open(file, framework="pt", device="cpu") as f:
            for key in keys:  # get_tensor maps the file; .to() copies only if dtype/device differ
                state[key] = f.get_tensor(key).to(device=device, dtype=dtype)
    model.load_state_dict(state, strict=True, assign=True)
    model.args.dtype = _dtype_name(model.lm_head.weight.dtype)
    return model


def save_hf(
    state_dict: dict[str, torch.Tensor],
    args: ModelArgs,
    path,
    max_shard_size: int = 5 * 10**9,
    tokenizer=None,
) -> None:
    """An HF checkpoint directory from a full state dict, in key order, a new shard whenever the
    next tensor would pass `max_shard_size` bytes; the tokenizer's file is copied beside."""
    from safetensors.torch import save_file

    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    shards, sizes = [[]], [0]
    for key, tensor in state_dict.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and sizes[-1] + nbytes > max_shard_size:
            shards, sizes = shards + [[]], sizes + [0]
        shards[-1].append(key)
        sizes[-1] += nbytes
    # Unlink the old files first: the mmaps of a model loaded from this very directory stay
    # valid, which rewriting a mapped file in place would not.
    for name in os.listdir(path):
        if name.startswith("model") and name.endswith((".safetensors", ".index.json")):
            os.remove(os.path.join(path, name))
    names = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    for name, keys in zip(names, shards):
        save_file(
            {k: state_dict[k].detach().to("cpu").contiguous() for k in keys},
            os.path.join(path, name),
            metadata={"format": "pt"},
        )
    if len(shards) > 1:
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump(
                {
                    "metadata": {"total_size": sum(sizes)},
                    "weight_map": {k: name for name, keys in zip(names, shards) for k in keys},
                },
                f,
                indent=2,
            )
    args = replace(args, dtype=_dtype_name(next(iter(state_dict.values())).dtype))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(args.to_hf_config(), f, indent=2)
    if tokenizer is not None:
        check_vocab(args.vocab_size, os.path.join(path, "config.json"), tokenizer)
        source = os.fspath(getattr(tokenizer, "model_path", tokenizer))
        if os.path.abspath(source) != os.path.abspath(os.path.join(path, "tokenizer.model")):
            shutil.copyfile(source, os.path.join(path, "tokenizer.model"))


def export_hf(
    model: Transformer, path: str, info: DistInfo, *, tokenizer=None, dtype: torch.dtype | None = None
):
    """An HF directory from a possibly sharded model: gathered to rank 0, written beside and
    renamed into place; `dtype` casts the weights (bf16 for a 7B export). Every rank must call it."""
    state = full_state_dict(model, info)
    if info.is_main:
        if dtype is not None:
            state = {k: v.to(dtype) for k, v in state.items()}
        tmp = path.rstrip("/") + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        save_hf(state, model.args, tmp, tokenizer=tokenizer)
        _swap_in(tmp, path.rstrip("/"))
    barrier(info)


def _swap_in(tmp: str, final: str) -> None:
    """Rename `tmp` to `final`; an existing `final` is set aside as `.old` and removed only after."""
    old = final + ".old"
    if os.path.exists(final):
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync(os.path.dirname(os.path.abspath(final)))
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- training checkpoints
def _complete(path: str) -> dict | None:
    """The meta dict of a complete checkpoint directory, else None."""
    try:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        if all(os.path.getsize(os.path.join(path, name)) == size for name, size in meta["files"].items()):
            return meta
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def _step_dirs(ckpt_dir: str) -> list[tuple[float, int, str]]:
    """(saved at, step, path) of every complete checkpoint, oldest first; `step_N.old` only while
    it is the sole copy of its step."""
    names = set(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else set()
    out = []
    for name in names:
        step = name[5:].removesuffix(".old")
        if name.startswith("step_") and step.isdigit() and not (name.endswith(".old") and name[:-4] in names):
            if (meta := _complete(os.path.join(ckpt_dir, name))) is not None:
                out.append((float(meta.get("saved_at", 0.0)), int(step), os.path.join(ckpt_dir, name)))
    return sorted(out)


def latest_checkpoint(ckpt_dir: str) -> str | None:
    """The most recently saved complete checkpoint in `ckpt_dir`, or None."""
    steps = _step_dirs(ckpt_dir)
    return steps[-1][2] if steps else None


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes (the data file, for the resume guard)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _app_state(models: dict, optimizers: dict) -> dict:
    """{name: model state dict, name + '.optim': optimizer state dict}, sharded as the model is."""
    state = {}
    for name, model in models.items():
        if name in optimizers:
            state[name], state[name + ".optim"] = get_state_dict(model, optimizers[name])
        else:
            state[name] = get_model_state_dict(model)
    return state


def save_checkpoint(
    ckpt_dir: str,
    step: int,
    info: DistInfo,
    models: dict,
    optimizers: dict,
    meta: dict | None = None,
    keep: int = 2,
) -> str:
    """Write checkpoint `step` atomically, keeping the `keep` most recent; every rank calls it. models:
    {name: module}; optimizers: {name: its optimizer} (a subset); `meta`: JSON-able trainer state."""
    final = os.path.join(ckpt_dir, f"step_{step:08d}")
    tmp = final + ".tmp"
    if info.is_main:
        os.makedirs(ckpt_dir, exist_ok=True)
        for name in os.listdir(ckpt_dir):  # leftovers of a run killed while saving
            if name.endswith(".tmp") or (
                name.endswith(".old") and _complete(os.path.join(ckpt_dir, name[:-4]))
            ):
                shutil.rmtree(os.path.join(ckpt_dir, name), ignore_errors=True)
        os.makedirs(tmp)
    barrier(info)
    dcp.save(_app_state(models, optimizers), checkpoint_id=tmp, no_dist=not info.distributed)
    version, internal, gauss = random.getstate()
    rng = {"torch": torch.get_rng_state(), "python": list(internal), "python_gauss": gauss}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save(rng, os.path.join(tmp, f"rng_{info.rank}.pt"))
    barrier(info)
    if info.is_main:
        files = sorted(os.listdir(tmp))
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(
                {
                    "step": step,
                    "world_size": info.world_size,
                    "saved_at": time.time(),
                    "files": {n: os.path.getsize(os.path.join(tmp, n)) for n in files},
                    **(meta or {}),
                },
                f,
                indent=2,
            )
        for name in [*files, "meta.json"]:  # all on disk before the rename makes the step visible
            _fsync(os.path.join(tmp, name))
        _fsync(tmp)
        _swap_in(tmp, final)
        for _, _, stale in _step_dirs(ckpt_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(stale, ignore_errors=True)
    barrier(info)
    return final


def load_checkpoint(path: str, info: DistInfo, models: dict, optimizers: dict) -> dict:
    """Restore models, optimizers and (at the same world size) this rank's RNG states; returns meta."""
    meta = _complete(path)
    if meta is None:
        raise FileNotFoundError(
            f"{path}: not a complete checkpoint (no meta.json, or files that do not match it)"
        )
    state = _app_state(models, optimizers)
    dcp.load(state, checkpoint_id=path, no_dist=not info.distributed)
    for name, model in models.items():
        if name in optimizers:
            set_state_dict(
                model, optimizers[name], model_state_dict=state[name], optim_state_dict=state[name + ".optim"]
            )
        else:
            set_model_state_dict(model, state[name])
    rng_file = os.path.join(path, f"rng_{info.rank}.pt")
    if meta["world_size"] == info.world_size and os.path.isfile(rng_file):
        rng = torch.load(rng_file, weights_only=True)
        torch.set_rng_state(rng["torch"])
        random.setstate((3, tuple(rng["python"]), rng["python_gauss"]))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    else:
        warnings.warn(
            f"{path} was written by {meta['world_size']} rank(s), this run has {info.world_size}: "
            f"model and optimizer state are resharded, RNG states are not restored"
        )
    return meta
