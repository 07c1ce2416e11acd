"""SFT pieces that are not wiring: the weighted loss, the data order, batches, optimiser, schedule.

Loss normaliser. The paper's L_MAE / L_PKT are plain sums over tokens; the authors' code
divides each sample's weighted sum by its sum of weights (batch size 1). We divide the
weighted sum of a whole optimizer step by the *global* sum of weights of that step (all
micro-batches on all ranks; the weights are known before the forward pass, so it is one
all-reduce of a scalar). This generalises the authors' per-sample weighted mean to batches,
makes the loss independent of world size and accumulation steps, and keeps its scale the same
with PKT on or off (with PKT off it is the plain mean over trained tokens), so one learning
rate serves every ablation. A plain sum would tie the step size to the batch's token count.
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F


def weighted_token_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                        normaliser: float | torch.Tensor) -> torch.Tensor:
    """L_MAE / L_PKT (paper Sec. 3.1-3.2): sum_t w_t * -log p(target_t) / normaliser.

    logits [B, T, V] (upcast to float32 here), targets [B, T], weights [B, T] (0 on context,
    masked calls and padding; PKT's w on key tokens). `normaliser` is the step's global sum of
    weights (see the module docstring).
    """
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    return (nll * weights.flatten().to(nll.dtype)).sum() / normaliser


# ----------------------------------------------------------------------------- data order


def epoch_batches(lengths: list[int], global_batch: int, seed: int, epoch: int,
                  bucket_batches: int = 16) -> list[list[int]]:
    """The global batches of one epoch: a list of `global_batch` sample indices per step.

    Deterministic for (seed, epoch) and independent of world size. Samples are shuffled, the
    last partial batch is dropped, and within chunks of `bucket_batches` batches samples are
    sorted by length before being cut into batches (length bucketing: micro-batches pad little);
    the batches are shuffled again so lengths do not trend within the epoch.
    """
    if global_batch < 1 or global_batch > len(lengths):
        raise ValueError(f"global batch {global_batch} must be between 1 and the number of samples ({len(lengths)})")
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order = order[: len(order) // global_batch * global_batch]
    batches = []
    chunk = global_batch * bucket_batches
    for start in range(0, len(order), chunk):
        by_length = sorted(order[start:start + chunk], key=lambda i: (lengths[i], i))
        batches += [by_length[j:j + global_batch] for j in range(0, len(by_length), global_batch)]
    rng.shuffle(batches)
    return batches


def micro_batches(batch: list[int], rank: int, world_size: int, micro_batch: int) -> list[list[int]]:
    """This rank's micro-batches of one global batch (one per accumulation step).

    The batch (length-sorted) is cut into world_size * accumulation slots of `micro_batch`
    samples; slot k goes to micro-step k // world_size on rank k % world_size, so at each
    micro-step the ranks hold neighbouring lengths (balanced work) and, over a step, every
    sample is used exactly once whatever the world size and accumulation.
    """
    per_step = world_size * micro_batch
    if len(batch) % per_step:
        raise ValueError(f"global batch {len(batch)} is not a multiple of world_size ({world_size}) "
                         f"x micro_batch ({micro_batch})")
    slots = [batch[k:k + micro_batch] for k in range(0, len(batch), micro_batch)]
    return slots[rank::world_size]


def collate(samples, pad_id: int, device="cpu") -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch to its longest sample (dynamic padding) and shift for next-token
    prediction: input_ids [B, T-1], targets [B, T-1], weights [B, T-1] (0 on padding), and
    attention_mask [B, T-1] (None when nothing is padded, so attention stays plain causal)."""
    T = max(len(s.input_ids) for s in samples)
    ids = torch.full((len(samples), T), pad_id, dtype=torch.long)
    weights = torch.zeros(len(samples), T, dtype=torch.float32)
    mask = torch.zeros(len(samples), T, dtype=torch.long)
    for b, s in enumerate(samples):
        n = len(s.input_ids)
        ids[b, :n] = torch.tensor(s.input_ids)
        weights[b, :n] = torch.tensor(s.weights)
        mask[b, :n] = 1
    padded = bool((mask[:, :-1] == 0).any())
    return {"input_ids": ids[:, :-1].to(device), "targets": ids[:, 1:].to(device),
            "weights": weights[:, 1:].to(device), "attention_mask": mask[:, :-1].to(device) if padded else None}


# ----------------------------------------------------------------------------- optimisation


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices (attention, MLP, embedding, lm_head), none on the
    1-D RMSNorm gains (decaying them pulls the norms towards 0, which is never the intent)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


LR_SCHEDULES = ("cosine", "constant")


def lr_at(step: int, total_steps: int, lr: float, warmup_steps: int = 0, min_lr_ratio: float = 0.1,
          schedule: str = "cosine") -> float:
    """Learning rate of optimizer step `step` (0-based): a linear warm-up over `warmup_steps` to
    `lr`, then either a cosine down to `min_lr_ratio * lr` at the last step ("cosine", the paper;
    HF's cosine ends at 0, a floor keeps the last steps useful) or `lr` ("constant": the authors'
    SFT run, whose DeepSpeed WarmupLR scheduler overrode HF's cosine; WarmupLR ramps up
    logarithmically, over the same steps)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"schedule must be one of {LR_SCHEDULES}; found {schedule!r}")
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    progress = (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
