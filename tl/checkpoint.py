"""Resumable training checkpoints (torch.distributed.checkpoint: model and optimizer state,
sharded as the models are, plus RNG states) and the atomic directory swap they and the HF
export use; layout: docs/ARCHITECTURE.md, "Checkpoint layout". HF directories: tl/hf.py.

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

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from tl.dist import DistInfo, all_reduce_sum, any_rank, barrier


def swap_in(tmp: str, final: str) -> None:
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


def _local_bytes(state) -> int:
    """Bytes of this rank's tensors in a (nested) state dict: its shards under FSDP."""
    if isinstance(state, dict):
        return sum(_local_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_local_bytes(v) for v in state)
    if isinstance(state, torch.Tensor):
        local = state.to_local() if hasattr(state, "to_local") else state  # a DTensor's shard
        return local.numel() * local.element_size()
    return 0


def _check_disk_space(path: str, state: dict, info: DistInfo) -> None:
    """Refuse, on every rank alike, a checkpoint that cannot fit: a full disk would otherwise stop
    the run inside torch.save with an error that does not say so."""
    # on the rank's device: nccl reduces only CUDA tensors
    local = torch.tensor(_local_bytes(state), dtype=torch.float64, device=info.device)
    needed = all_reduce_sum(local, info).item()
    free = shutil.disk_usage(path).free
    if any_rank(needed > free, info.device):
        raise SystemExit(
            f"not enough disk space for a checkpoint in {path}: it needs {needed / 1e9:.2f} GB, "
            f"{free / 1e9:.2f} GB are free: free some, keep fewer checkpoints (--keep), or run on a larger "
            f"disk (--out)"
        )


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
    state = _app_state(models, optimizers)
    _check_disk_space(tmp, state, info)
    dcp.save(state, checkpoint_id=tmp, no_dist=not info.distributed)
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
        swap_in(tmp, final)
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
            f"model and optimizer state are resharded, RNG states are not restored",
            stacklevel=2,
        )
    return meta
