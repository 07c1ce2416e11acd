"""torchrun / FSDP2 plumbing and the run-directory code (presets, resume, metrics) the trainers
share; nothing here knows about SFT or PPO (docs/ARCHITECTURE.md, "Distributed training"). As
plain `python`: one process, no FSDP, collectives are no-ops, so the same code runs both ways.
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    set_model_state_dict,
)

from tl.model import ModelArgs, Transformer


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
    """This process's rank and device; `device` ("cpu"/"cuda") overrides the default (CUDA if any)."""
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(0, 1, 0, torch.device("cuda" if use_cuda else "cpu"), False)
    rank, world, local = (
        int(os.environ["RANK"]),
        int(os.environ["WORLD_SIZE"]),
        int(os.environ.get("LOCAL_RANK", 0)),
    )
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, torch.device(f"cuda:{local}" if use_cuda else "cpu"), True)


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of `x` over ranks (a new tensor)."""
    x = x.detach().clone()
    if info.distributed:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def any_rank(flag, device="cpu") -> bool:
    """True if `flag` holds on any rank: under FSDP every rank must run as many forwards (they
    all-gather parameters), so a rank done generating keeps stepping until all are."""
    t = torch.tensor(int(bool(flag)), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def shard_model(
    model: torch.nn.Module, info: DistInfo, *, bf16: bool = False, activation_checkpointing: bool = False
):
    """Activation checkpointing per block (optional), then FSDP2 on each block and the root. `bf16`:
    blocks compute in bfloat16, master weights and gradient reduction in float32."""
    from torch.distributed._composable import checkpoint  # keeps parameter names (no wrapper module)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if activation_checkpointing:
        for block in model.layers:
            checkpoint(block)
    if info.distributed:
        policy = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32
        )
        for block in model.layers:
            fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
    return model


def compute_context(info: DistInfo, bf16: bool):
    """bf16 autocast in a single process (under torchrun FSDP's policy casts). Forwards whose
    numbers are compared (PPO's old log-probs and update) must run under the same context."""
    return (
        torch.autocast(info.device.type, dtype=torch.bfloat16)
        if bf16 and not info.distributed
        else nullcontext()
    )


def load_model(
    source: str | ModelArgs,
    info: DistInfo,
    *,
    seed: int = 0,
    bf16: bool = False,
    activation_checkpointing: bool = False,
    tokenizer=None,
    wrap=None,
) -> torch.nn.Module:
    """A float32 training model from an HF directory (`source` a path) or random (a `ModelArgs`),
    sharded with `shard_model`. Under torchrun it is built on the meta device and sharded first;
    only rank 0 reads the weights, broadcast into every rank's shards. `tokenizer` is checked
    against the vocab. `wrap(transformer) -> module` (PPO's critic) is applied before sharding on
    every rank; it must expose `.layers` and initialise deterministically."""
    wrap = wrap or (lambda model: model)

    def full_model(device):
        if isinstance(source, ModelArgs):
            return wrap(Transformer.from_config(source, seed=seed, device=device, dtype=torch.float32))
        return wrap(
            Transformer.from_pretrained(source, dtype=torch.float32, device=device, tokenizer=tokenizer)
        )

    shard = dict(bf16=bf16, activation_checkpointing=activation_checkpointing)
    if not info.distributed:
        return shard_model(full_model(info.device), info, **shard)
    from tl.checkpoint import read_config

    args = source if isinstance(source, ModelArgs) else read_config(source)
    with torch.device("meta"):
        model = wrap(Transformer(replace(args, dtype="float32")))
    shard_model(model, info, **shard)
    model.to_empty(device=info.device)
    full = full_model("cpu").state_dict() if info.is_main else {}
    set_model_state_dict(
        model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    )
    return model


def full_state_dict(model: torch.nn.Module, info: DistInfo) -> dict[str, torch.Tensor]:
    """The unsharded state dict on CPU, on rank 0 (every rank must call; the others get {})."""
    if not info.distributed:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state if info.is_main else {}


# ----------------------------------------------------------------------------- run directories
def add_run_args(p) -> None:
    """The flags both trainers share: seed, device, precision, and the run directory's checkpoints."""
    p.add_argument("--grad_clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, help="bf16 compute (default: on CUDA)")
    p.add_argument("--activation_checkpointing", action=argparse.BooleanOptionalAction)
    p.add_argument("--save_every", type=int, help="checkpoint every N steps (0: only at the end)")
    p.add_argument("--keep", type=int, default=2, help="checkpoints kept")
    p.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in OUT/checkpoints"
    )
    p.add_argument("--export_dtype", choices=("float32", "bfloat16"), help="dtype of the HF export")


def apply_preset(args, presets: dict, defaults: dict, name: str | None):
    """Fill every flag left at None from the preset, then from the defaults: explicit flags win."""
    for key, value in {**defaults, **presets.get(name, {})}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def resume(args, info: DistInfo, models: dict, optimizers: dict, run: dict, log) -> tuple[int, dict]:
    """(first step, meta): with `args.resume` the newest checkpoint in OUT/checkpoints is loaded
    (refused when its `run` settings differ); OUT/metrics.jsonl keeps the lines up to that step."""
    from tl.checkpoint import latest_checkpoint, load_checkpoint

    ckpt_dir, metrics = os.path.join(args.out, "checkpoints"), os.path.join(args.out, "metrics.jsonl")
    start, meta = 0, {}
    if args.resume and (path := latest_checkpoint(ckpt_dir)):
        meta = load_checkpoint(path, info, models, optimizers)
        changed = {k: (meta["run"].get(k), v) for k, v in run.items() if meta["run"].get(k) != v}
        if changed:
            raise SystemExit(
                f"--resume: {path} was written with other settings {changed} (saved, now); "
                f"an exact continuation needs the same ones"
            )
        start = meta["step"]
        log(f"resumed from {path} at step {start}")
    elif args.resume:
        log(f"--resume: no checkpoint in {ckpt_dir}, starting from step 0")
    if info.is_main:
        os.makedirs(args.out, exist_ok=True)
        kept = (
            [line for line in open(metrics) if json.loads(line)["step"] <= start]
            if start and os.path.exists(metrics)
            else []
        )
        with open(metrics, "w") as f:
            f.writelines(kept)
    return start, meta


def log_metrics(args, info: DistInfo, record: dict) -> None:
    if info.is_main:
        with open(os.path.join(args.out, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(args) -> list[dict]:
    with open(os.path.join(args.out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]
