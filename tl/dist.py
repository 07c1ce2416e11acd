"""torchrun / FSDP2 plumbing shared by the trainers: process group, sharded model loading,
resumable checkpoints and HF export. Nothing here knows about SFT or PPO.

- Started by torchrun (`RANK`/`WORLD_SIZE` set): a process group (nccl on CUDA, gloo on CPU),
  one device per rank, and models sharded with FSDP2 (`fully_shard` per block, then the root).
- Started as plain `python`: one process, no process group, no FSDP; every helper below still
  works (collectives are no-ops), so the same training code runs both ways.

Gradients: FSDP2 *averages* gradients over ranks (its default, kept here). A loss that is
already normalised by a global count (summed over ranks) must be multiplied by `world_size`
before backward so the gradient equals the single-process one; see train_sft.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                     set_model_state_dict, set_state_dict)

from tl.model import ModelArgs, Transformer, save_hf_checkpoint


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    distributed: bool  # a process group exists (started by torchrun): models are FSDP-sharded

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistInfo:
    """Set up this process: under torchrun a process group (nccl on CUDA, gloo on CPU) with one
    device per rank; otherwise a single process. `device` ("cpu"/"cuda") overrides the
    default (CUDA when available). Safe to call twice (the group is reused)."""
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(0, 1, 0, torch.device("cuda" if use_cuda else "cpu"), False)
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, torch.device(f"cuda:{local}" if use_cuda else "cpu"), True)


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of `x` over ranks (a new tensor; `x` itself unchanged). Identity in one process."""
    x = x.detach().clone()
    if info.distributed:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's `obj` on every rank (e.g. a path rank 0 decided)."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ----------------------------------------------------------------------------- models


def shard_model(model: Transformer, info: DistInfo, *, bf16: bool = False,
                activation_checkpointing: bool = False) -> Transformer:
    """Activation checkpointing per block (optional), then FSDP2: `fully_shard` on each block,
    then on the root (embedding, final norm, lm_head). With `bf16` the blocks compute in
    bfloat16 while the sharded master weights, gradients and their reduction stay float32
    (`MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)`). In one process there is no
    FSDP; `bf16` then applies through `autocast` (see `compute_context`)."""
    from torch.distributed._composable import checkpoint  # keeps parameter names (no wrapper module)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if activation_checkpointing:
        for block in model.layers:
            checkpoint(block)
    if info.distributed:
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
        for block in model.layers:
            fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
    return model


def compute_context(info: DistInfo, bf16: bool):
    """bf16 autocast for a single process, on CUDA or CPU (FSDP's policy does the casting under
    torchrun). Every forward whose numbers are compared with another one -- PPO's rollout, its
    old log-probs and its update -- must run under the same context."""
    if bf16 and not info.distributed:
        return torch.autocast(info.device.type, dtype=torch.bfloat16)
    return nullcontext()


def load_model(source: str | ModelArgs, info: DistInfo, *, seed: int = 0, bf16: bool = False,
               activation_checkpointing: bool = False, tokenizer=None, wrap=None) -> Transformer:
    """A float32 training model from an HF directory (`source` a path) or randomly initialised
    (`source` a `ModelArgs`, `Transformer.from_config(seed=seed)`), sharded with `shard_model`.

    Under torchrun the model is built on the meta device and sharded first; only rank 0 reads
    the checkpoint (or draws the random weights), and the tensors are broadcast into every
    rank's shards, so no rank but 0 ever holds a full copy in memory. `tokenizer` (path or
    Tokenizer) is checked against the vocabulary size.

    `wrap(transformer) -> module` (e.g. PPO's critic: trunk + value head, lm_head dropped) is
    applied before sharding, to the meta model and to rank 0's loaded one alike; the module
    must expose `.layers` and initialise its new parameters deterministically (rank 0's values
    are broadcast).
    """
    wrap = wrap or (lambda model: model)

    def full_model(device):
        if isinstance(source, ModelArgs):
            model = Transformer.from_config(source, seed=seed, device=device, dtype=torch.float32)
        else:
            model = Transformer.from_pretrained(source, dtype=torch.float32, device=device, tokenizer=tokenizer)
        return wrap(model)

    if not info.distributed:
        return shard_model(full_model(info.device), info, bf16=bf16, activation_checkpointing=activation_checkpointing)
    if isinstance(source, ModelArgs):
        args = source
    else:
        config_file = os.path.join(source, "config.json")
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"{config_file}: no config.json (expected an HF checkpoint directory)")
        with open(config_file) as f:
            args = ModelArgs.from_hf_config(json.load(f), source=config_file)
    if args.tie_word_embeddings:
        raise NotImplementedError("tie_word_embeddings=true under FSDP2 meta-device loading is not supported "
                                  "(LLaMA/CodeLLaMA do not tie); run without torchrun or untie the model")
    with torch.device("meta"):
        model = wrap(Transformer(replace(args, dtype="float32")))
    shard_model(model, info, bf16=bf16, activation_checkpointing=activation_checkpointing)
    model.to_empty(device=info.device)
    full = full_model("cpu").state_dict() if info.is_main else {}
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    del full
    return model


def full_state_dict(model: torch.nn.Module, info: DistInfo) -> dict[str, torch.Tensor]:
    """The unsharded state dict on CPU, on rank 0 (every rank must call; others get {})."""
    if not info.distributed:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state if info.is_main else {}


def export_hf(model: Transformer, path: str, info: DistInfo, *, tokenizer=None,
              dtype: torch.dtype | None = None) -> None:
    """Write an HF LLaMA directory (config.json, safetensors, tokenizer.model) from a possibly
    sharded model: gathered to rank 0, written to a temporary directory and renamed into place.
    `dtype` casts the weights (e.g. bf16 for a 7B export). Every rank must call it."""
    state = full_state_dict(model, info)
    if info.is_main:
        if dtype is not None:
            state = {k: v.to(dtype) for k, v in state.items()}
        if model.args.tie_word_embeddings:
            state.pop("lm_head.weight", None)  # HF stores a tied head once, as the embedding
        args = replace(model.args, dtype=str(next(iter(state.values())).dtype).removeprefix("torch."))
        tmp = path.rstrip("/") + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        save_hf_checkpoint(state, args, tmp, tokenizer=tokenizer)
        _replace_dir(tmp, path)
    barrier(info)


def _replace_dir(src: str, dst: str) -> None:
    """Move directory `src` to `dst`, replacing an existing `dst` (rename is atomic per dir)."""
    old = dst.rstrip("/") + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(dst):
        os.rename(dst, old)
    os.rename(src, dst)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- checkpoints
#
# A checkpoint is a directory `step_{N:08d}/` holding the sharded model and optimizer state
# (torch.distributed.checkpoint, one file per rank), `rng_{rank}.pt` per rank and `meta.json`
# (the step, when it was saved, the size of every other file, and whatever the trainer adds).
# It is written as `step_N.tmp/`, fsynced, and only then renamed into place; an existing
# `step_N/` is first renamed to `step_N.old/` and deleted after, so a crash at any moment
# leaves a complete checkpoint of that step. A directory whose files do not match its
# meta.json (a torn copy, a disk that lost data) is not a checkpoint: resume falls back to the
# newest complete one. "Newest" means most recently saved, so a fresh run in an old run
# directory keeps its own checkpoints, not the old run's higher step numbers. DCP reshards on
# load, so model and optimizer state load at any world size; the per-rank RNG states are
# restored only at the world size they were saved with.


def _complete(path: str) -> dict | None:
    """The meta dict of a complete checkpoint directory, else None."""
    try:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        sizes = meta["files"]
        if all(os.path.getsize(os.path.join(path, name)) == size for name, size in sizes.items()):
            return meta
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _step_dirs(ckpt_dir: str) -> list[tuple[float, int, str]]:
    """(saved at, step, path) of every complete checkpoint, oldest first (`step_N.old` counts
    only in the moment when it is the sole copy of its step)."""
    if not os.path.isdir(ckpt_dir):
        return []
    names = set(os.listdir(ckpt_dir))
    out = []
    for name in names:
        step = name[5:].removesuffix(".old")
        if not (name.startswith("step_") and step.isdigit()) or (name.endswith(".old") and name[:-4] in names):
            continue
        meta = _complete(os.path.join(ckpt_dir, name))
        if meta is not None:
            out.append((float(meta.get("saved_at", 0.0)), int(step), os.path.join(ckpt_dir, name)))
    return sorted(out)


def latest_checkpoint(ckpt_dir: str) -> str | None:
    """The most recently saved complete checkpoint directory in `ckpt_dir`, or None."""
    steps = _step_dirs(ckpt_dir)
    return steps[-1][2] if steps else None


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes (a run's data file, for the resume guard)."""
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


def _rng_state() -> dict:
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": list(internal), "python_gauss": gauss_next}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _app_state(models: dict, optimizers: dict) -> dict:
    """{name: model state dict, name + '.optim': optimizer state dict}, sharded as the model is."""
    state = {}
    for name, model in models.items():
        if name in optimizers:
            state[name], state[name + ".optim"] = get_state_dict(model, optimizers[name])
        else:
            state[name] = get_model_state_dict(model)
    return state


def save_checkpoint(ckpt_dir: str, step: int, info: DistInfo, models: dict, optimizers: dict,
                    meta: dict | None = None, keep: int = 2) -> str:
    """Write checkpoint `step` atomically and keep only the newest `keep` ones.

    models: {name: module}; optimizers: {name: optimizer of models[name]} (a subset). `meta` is
    JSON-able trainer state (e.g. the lr schedule's inputs). Every rank must call it.
    """
    final = os.path.join(ckpt_dir, f"step_{step:08d}")
    tmp = final + ".tmp"
    if info.is_main:
        os.makedirs(ckpt_dir, exist_ok=True)
        for name in os.listdir(ckpt_dir):  # leftovers of a run killed while saving
            if name.endswith(".tmp") or (name.endswith(".old") and _complete(os.path.join(ckpt_dir, name[:-4]))):
                shutil.rmtree(os.path.join(ckpt_dir, name), ignore_errors=True)
        os.makedirs(tmp)
    barrier(info)
    dcp.save(_app_state(models, optimizers), checkpoint_id=tmp, no_dist=not info.distributed)
    torch.save(_rng_state(), os.path.join(tmp, f"rng_{info.rank}.pt"))
    barrier(info)
    if info.is_main:
        files = sorted(os.listdir(tmp))
        for name in files:
            _fsync(os.path.join(tmp, name))
        sizes = {name: os.path.getsize(os.path.join(tmp, name)) for name in files}
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump({"step": step, "world_size": info.world_size, "saved_at": time.time(), "files": sizes,
                       **(meta or {})}, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        _fsync(tmp)
        old = final + ".old"
        if os.path.exists(final):  # re-saving a step: set the old copy aside, never delete it first
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync(ckpt_dir)
        shutil.rmtree(old, ignore_errors=True)
        for _, _, stale in _step_dirs(ckpt_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(stale, ignore_errors=True)
    barrier(info)
    return final


def load_checkpoint(path: str, info: DistInfo, models: dict, optimizers: dict) -> dict:
    """Restore models, optimizers and (at the same world size) this rank's RNG states from a
    checkpoint directory written by `save_checkpoint`; returns its meta dict."""
    meta = _complete(path)
    if meta is None:
        raise FileNotFoundError(f"{path}: not a complete checkpoint (no meta.json, or files that do not match it)")
    state = _app_state(models, optimizers)
    dcp.load(state, checkpoint_id=path, no_dist=not info.distributed)
    for name, model in models.items():
        if name in optimizers:
            set_state_dict(model, optimizers[name], model_state_dict=state[name],
                           optim_state_dict=state[name + ".optim"])
        else:
            set_model_state_dict(model, state[name])
    rng_file = os.path.join(path, f"rng_{info.rank}.pt")
    if meta["world_size"] == info.world_size and os.path.isfile(rng_file):
        _set_rng_state(torch.load(rng_file, weights_only=True))
    else:
        warnings.warn(f"{path} was written by {meta['world_size']} rank(s), this run has {info.world_size}: "
                      f"model and optimizer state are resharded, RNG states are not restored")
    return meta
