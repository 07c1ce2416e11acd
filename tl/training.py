"""What both trainers share: the training model (built, sharded, loaded on rank 0 and broadcast),
the backward of a rank's share of a global loss, AdamW's parameter groups, the learning-rate
schedule, and the data order (an epoch's global batches, a rank's micro-batches of one)."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

from tl.dist import DistInfo, shard_model
from tl.hf import load_hf, read_config
from tl.model import ModelArgs, Transformer


def load_model(
    source: str | ModelArgs,
    info: DistInfo,
    *,
    seed: int = 0,
    bf16: bool = False,
    activation_checkpointing: bool = False,
    reshard_after_forward: bool = True,
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
        return wrap(load_hf(source, dtype=torch.float32, device=device, tokenizer=tokenizer))

    shard = dict(
        bf16=bf16,
        activation_checkpointing=activation_checkpointing,
        reshard_after_forward=reshard_after_forward,
    )
    if not info.distributed:
        return shard_model(full_model(info.device), info, **shard)

    args = source if isinstance(source, ModelArgs) else read_config(source)
    with torch.device("meta"):
        model = wrap(Transformer(replace(args, dtype="float32")))
    shard_model(model, info, **shard)
    model.to_empty(device=info.device)
    full = full_model("cpu").state_dict() if info.is_main else {}
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full, options=options)
    return model


def epoch_batches(
    lengths: list[int], global_batch: int, seed: int, epoch: int, bucket_batches: int = 16
) -> list[list[int]]:
    """The global batches (lists of sample indices) of one epoch, deterministic for (seed, epoch)
    whatever the world size: shuffled, the last partial batch dropped, sorted by length within
    chunks of `bucket_batches` batches (micro-batches pad little), the batches shuffled again."""
    if global_batch < 1 or global_batch > len(lengths):
        raise ValueError(
            f"global batch {global_batch} must be between 1 and the number of samples ({len(lengths)})"
        )
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order = order[: len(order) // global_batch * global_batch]
    batches = []
    chunk = global_batch * bucket_batches
    for start in range(0, len(order), chunk):
        by_length = sorted(order[start : start + chunk], key=lambda i: (lengths[i], i))
        batches += [by_length[j : j + global_batch] for j in range(0, len(by_length), global_batch)]
    rng.shuffle(batches)
    return batches


def micro_batches(batch: list[int], rank: int, world_size: int, micro_batch: int) -> list[list[int]]:
    """This rank's micro-batches of one (length-sorted) global batch: slot k of `micro_batch` samples
    goes to micro-step k // world_size on rank k % world_size, so ranks hold neighbouring lengths."""
    per_step = world_size * micro_batch
    if len(batch) % per_step:
        raise ValueError(
            f"global batch {len(batch)} is not a multiple of world_size ({world_size}) "
            f"x micro_batch ({micro_batch})"
        )
    slots = [batch[k : k + micro_batch] for k in range(0, len(batch), micro_batch)]
    return slots[rank::world_size]


def backward_share(loss: torch.Tensor, info: DistInfo) -> None:
    """Backward of this rank's part of the step loss. FSDP2 averages gradients over ranks, but
    each rank's `loss` is already its share of a global sum (the normaliser counts every rank),
    so it is scaled by the world size to make the average a sum."""
    (loss * info.world_size).backward()


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices (attention, MLP, embedding, lm_head), none on the
    1-D RMSNorm gains (decaying them pulls the norms towards 0, which is never the intent)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


LR_SCHEDULES = ("cosine", "constant")


def lr_at(
    step: int,
    total_steps: int,
    lr: float,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.1,
    schedule: str = "cosine",
) -> float:
    """Learning rate of optimizer step `step` (0-based): a linear warm-up over `warmup_steps` to `lr`,
    then a cosine down to `min_lr_ratio * lr` at the last step ("cosine", the paper) or `lr`
    ("constant": the authors' SFT run, whose DeepSpeed WarmupLR overrode HF's cosine)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"schedule must be one of {LR_SCHEDULES}; found {schedule!r}")
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    progress = (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
