"""torchrun and FSDP2 plumbing: the process group, a rank's device, collectives, sharding and the
compute context (docs/ARCHITECTURE.md, "Distributed training"). Nothing here knows about models,
SFT or PPO. As plain `python`: one process, no FSDP, collectives are no-ops, so the same trainer
code runs both ways.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict


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
    """This process's rank and device. `device`: "cpu", "cuda", or None for CUDA when available.
    Under torchrun on CUDA, rank LOCAL_RANK takes GPU LOCAL_RANK, so there must be that many."""
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(0, 1, 0, torch.device("cuda" if use_cuda else "cpu"), False)

    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise SystemExit(
                f"local rank {local} needs GPU cuda:{local}, but this machine has "
                f"{torch.cuda.device_count()}: start at most that many processes per node, "
                f"or pass --device cpu"
            )
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
    model: torch.nn.Module,
    info: DistInfo,
    *,
    bf16: bool = False,
    activation_checkpointing: bool = False,
    reshard_after_forward: bool = True,
):
    """Activation checkpointing per block (optional), then FSDP2 on each block and the root
    (`model.layers` are the blocks). `bf16`: blocks compute in bfloat16, master weights and
    gradient reduction in float32. `reshard_after_forward`: free each block's gathered weights
    after its forward and gather them again for its backward (FSDP's default: the least memory);
    False keeps them from forward to backward, one all-gather per block and step instead of two."""
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
            fully_shard(block, mp_policy=policy, reshard_after_forward=reshard_after_forward)
        fully_shard(model, mp_policy=policy)  # the root keeps its weights to backward (FSDP2's rule)
        model.reshard_after_forward = reshard_after_forward  # what `gathered` restores
    return model


@contextmanager
def gathered(model: torch.nn.Module):
    """Inside: an FSDP2 model's weights are all-gathered at the first forward and stay gathered
    (generation runs one forward per new token: without this, every block is gathered again for
    each token). On leaving they are freed. A no-op for a model that is not sharded."""
    from torch.distributed.fsdp import FSDPModule

    sharded = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not sharded:
        yield
        return
    for module in sharded:
        module.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        restore = getattr(model, "reshard_after_forward", True)
        for module in sharded:
            if module is not model:  # the root never reshards after forward (see shard_model)
                module.set_reshard_after_forward(restore, recurse=False)
            module.reshard()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512_BF16 or AMX: Intel Sapphire Rapids
    and later, AMD Zen 4 and later). Without it, bf16 matmuls are emulated and slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(flag: bool | None, device: torch.device) -> bool:
    """bf16 compute (fp32 master weights) as asked, or when `flag` is None: on CUDA, and on a CPU
    that has native bf16 (`cpu_has_bf16`)."""
    if flag is not None:
        return flag
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())


def compute_context(info: DistInfo, bf16: bool):
    """bf16 autocast in a single process (under torchrun FSDP's policy casts). Forwards whose
    numbers are compared (PPO's old log-probs and update) must run under the same context."""
    if bf16 and not info.distributed:
        return torch.autocast(info.device.type, dtype=torch.bfloat16)
    return nullcontext()


def full_state_dict(model: torch.nn.Module, info: DistInfo) -> dict[str, torch.Tensor]:
    """The unsharded state dict on CPU, on rank 0 (every rank must call; the others get {})."""
    if not info.distributed:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state if info.is_main else {}
