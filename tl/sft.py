"""Supervised fine-tuning with MAE and PKT (paper Sec. 3.1-3.2): per-token loss weights (the
weights themselves: docs/ARCHITECTURE.md, "SFT samples"), samples, the weighted loss and its
normalisation, the warm-up data order and micro-batch collation.

Loss normaliser: the paper's L_MAE / L_PKT are sums over tokens; the authors' code divides each
sample's weighted sum by its sum of weights (batch 1). Here a step's weighted sum is divided by the
step's global sum of weights (all micro-batches on all ranks, known before the forward pass): the
loss does not depend on world size or accumulation, and keeps one scale with PKT on or off, so one
learning rate serves every ablation. `--sample_unit turn` is the authors' unit (`split_turns`).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tl.classify import ALL_RIGHT, OTHERS, authors_feedback_is_error, classify_feedback
from tl.dist import DistInfo, all_reduce_sum

# ----------------------------------------------------------------------------- MAE
MAE_RULES = ("taxonomy", "authors")


def erroneous_calls(
    messages: list[dict], feedback: dict[int, str | None], rule: str = "taxonomy"
) -> dict[int, str]:
    """T_e of L_MAE (paper Sec. 3.1, Eq. 1): {assistant message index: feedback category} of every
    call whose feedback is not `all_right` (a call with no feedback after it is not in T_e).
    `feedback`: the record's feedback categories per call (`tl.classify.feedback_categories`,
    read once when the record is validated). rule "authors" (their `mae.py`): the message right
    after the call is feedback that `authors_feedback_is_error` flags; reported with its taxonomy
    category, else `others`."""
    if rule == "taxonomy":
        return {i: c for i, c in feedback.items() if c not in (None, ALL_RIGHT)}
    if rule != "authors":
        raise ValueError(f"rule must be one of {MAE_RULES}; found {rule!r}")
    out = {}
    for i in feedback:
        after = messages[i + 1] if i + 1 < len(messages) else {}
        if after.get("role") in ("tool", "function") and authors_feedback_is_error(after.get("content", "")):
            category = classify_feedback(str(after.get("content", "")))
            out[i] = OTHERS if category == ALL_RIGHT else category
    return out


# ----------------------------------------------------------------------------- PKT
def key_token_positions(call_ids: list[int], rival_ids: list[list[int]], start: int = 0) -> list[int]:
    """K_i of L_PKT (paper Sec. 3.2): positions in `call_ids` (the call's tokens from the tool
    name on, ` name(k="v")`) of its key tokens: the name's first token (`start`), and for each
    rival (the tokens of ` other_name(` for every *other* tool, encoded the same way) sharing a
    prefix of length p > start, position p: where the names diverge, or the token after the name.
    start: where the name starts when every sequence begins with shared tokens (a later call of
    a parallel turn `[f(...), g(...)]`); 0 for a plain call."""
    if not call_ids:
        return []
    key = {start}
    for rival in rival_ids:
        p = len(os.path.commonprefix([call_ids, rival]))
        if start < p < len(call_ids):
            key.add(p)
    return sorted(key)


def key_token_weight(n_key: int, n_nonkey: int, w_max: float) -> float:
    """w = CLIP(|NK_i| / |K_i|, 1, w_max), the loss weight of each key token (paper Sec. 3.2)."""
    if n_key < 1:
        raise ValueError(f"a call has at least one key token (its first); found n_key={n_key}")
    return float(min(max(n_nonkey / n_key, 1.0), w_max))


def call_token_weights(n_tokens: int, key: list[int], w_max: float) -> list[float]:
    """Per-token weights of one supervised call under PKT: `key_token_weight` on K_i, 1 on NK_i (the
    other tokens of the call text; the turn's EOS is not counted, as in the authors' code)."""
    w = key_token_weight(len(key), n_tokens - len(key), w_max)
    key = set(key)
    return [w if i in key else 1.0 for i in range(n_tokens)]


# ----------------------------------------------------------------------------- tokenisation
@dataclass
class Sample:
    """One trajectory as training ids. weights[i] is the loss weight of predicting input_ids[i]."""

    id: str
    input_ids: list[int]
    weights: list[float]
    n_calls: int = 0  # supervised or masked calls
    masked: Counter = field(default_factory=Counter)  # feedback category -> calls masked by MAE
    n_key_tokens: int = 0  # PKT key tokens of supervised calls (whatever w they got after the clip)
    turns: list = field(default_factory=list)  # (start, end, key tokens) of each trained turn, EOS included


def _token_index_at(tok, ids: list[int], char: int) -> int:
    """Index of the token of `ids` (a continuation encoding) that holds character `char`."""
    for k in range(len(ids)):
        if len(tok.decode(ids[: k + 1], continuation=True)) > char:
            return k
    raise ValueError(f"character {char} lies beyond the {len(ids)} tokens")


def segment_key_positions(tok, segment, tool_names: list[str]) -> list[int]:
    """PKT key positions in a call segment's continuation ids, for each call of the turn: the
    rivals are the segment's text before the call's name followed by `other_name(`."""
    ids = tok.encode_continuation(segment.text)
    key = set()
    for call, (s, _) in zip(segment.calls, segment.name_spans):
        prefix = segment.text[:s]
        rivals = [tok.encode_continuation(prefix + other + "(") for other in tool_names if other != call.name]
        key.update(key_token_positions(ids, rivals, start=_token_index_at(tok, ids, s)))
    return sorted(key)


def tokenize_record(
    tok, record: dict, *, mae: bool = True, pkt: bool = True, w_max: float = 9.0, mae_rule: str = "taxonomy"
) -> Sample:
    """A validated record (`tasks.trajectories.validate_record`: its `segments` rendered and its
    `feedback` read once) -> `Sample`, whose ids equal `tok.encode_chat(render_prompt(...))`.
    mae: calls in `erroneous_calls` get weight 0, their EOS too; pkt: `call_token_weights`."""
    if "segments" not in record or "feedback" not in record:
        raise ValueError("tokenize_record needs a validated record (tasks.trajectories.validate_record)")
    segments = record["segments"]
    masked_calls = erroneous_calls(record["messages"], record["feedback"], mae_rule) if mae else {}
    names = [t["name"] for t in record["tools"]]
    bos = [tok.bos_id] * tok.add_bos  # as encode_chat: SmolLM2's tokenizer adds none
    sample = Sample(str(record.get("id", "")), bos, [0.0] * len(bos))
    turn_weight = 0.0  # the EOS after a turn gets 1 when the turn is trained, else 0
    turn_start = turn_keys = 0
    for n, seg in enumerate(segments):
        if seg.kind == "eos":
            sample.input_ids.append(tok.eos_id)
            sample.weights.append(turn_weight)
            if turn_weight:
                sample.turns.append((turn_start, len(sample.input_ids), turn_keys))
            continue
        turn_start, turn_keys = len(sample.input_ids), 0
        ids = tok.encode(seg.text) if n == 0 else tok.encode_continuation(seg.text)
        weights = [0.0 if seg.kind == "context" else 1.0] * len(ids)
        if seg.kind == "call" and seg.message_index in masked_calls:
            weights = [0.0] * len(ids)
            sample.masked[masked_calls[seg.message_index]] += 1
        elif seg.kind == "call" and pkt:
            key = segment_key_positions(tok, seg, names)
            weights = call_token_weights(len(ids), key, w_max)
            sample.n_key_tokens += len(key)
            turn_keys = len(key)
        sample.n_calls += seg.kind == "call"
        turn_weight = 1.0 if seg.kind != "context" and any(weights) else 0.0
        sample.input_ids += ids
        sample.weights += weights
    return sample


def split_turns(sample: Sample) -> list[Sample]:
    """The authors' sample unit: one sample per trained assistant turn, holding the conversation
    up to the end of that turn with only that turn's weights (its masked, MAE-dropped turns and
    everything after it gone). Encoding segment by segment makes each a prefix of the ids."""
    out = []
    for k, (start, end, keys) in enumerate(sample.turns):
        weights = [0.0] * start + sample.weights[start:end]
        out.append(
            Sample(
                f"{sample.id}@{k}",
                sample.input_ids[:end],
                weights,
                n_calls=int(keys > 0),
                n_key_tokens=keys,
                turns=[(start, end, keys)],
            )
        )
    return out


SAMPLE_UNITS = ("trajectory", "turn")


def _surely_longer(tok, record: dict, max_seq_len: int, unit: str) -> bool:
    """Whether the record (for unit "turn": already its first assistant turn) must have more than
    `max_seq_len` tokens, judged from its rendered character count without tokenising it."""
    chars = 0
    for segment in record["segments"]:
        chars += len(segment.text)
        if unit == "turn" and segment.kind == "eos":
            break  # the end of the first assistant turn
    return chars > max_seq_len * tok.max_piece_chars


def build_samples(
    tok,
    records: list[dict],
    *,
    mae: bool = True,
    pkt: bool = True,
    w_max: float = 9.0,
    max_seq_len: int = 2048,
    overlong: str = "drop",
    unit: str = "trajectory",
    mae_rule: str = "taxonomy",
) -> tuple[list[Sample], dict]:
    """Samples of every record: one per trajectory, or per trained assistant turn (`unit="turn"`,
    `split_turns`). Longer than `max_seq_len`: dropped (`overlong="drop"`) or cut ("truncate"); a
    sample with no trained token left is dropped and counted. Returns (samples, stats): {"records",
    "overlong", "untrained", "calls", "masked": Counter, "key_tokens", "trained_tokens"}."""
    if overlong not in ("drop", "truncate"):
        raise ValueError(f"overlong must be 'drop' or 'truncate'; found {overlong!r}")
    if unit not in SAMPLE_UNITS:
        raise ValueError(f"unit must be one of {SAMPLE_UNITS}; found {unit!r}")
    samples = []
    stats = {
        "records": len(records),
        "overlong": 0,
        "untrained": 0,
        "calls": 0,
        "masked": Counter(),
        "key_tokens": 0,
        "trained_tokens": 0,
    }
    for record in records:
        if overlong == "drop" and _surely_longer(tok, record, max_seq_len, unit):
            stats["overlong"] += 1  # not tokenised: a 50 MB record would take minutes only to be dropped
            continue
        s = tokenize_record(tok, record, mae=mae, pkt=pkt, w_max=w_max, mae_rule=mae_rule)
        stats["calls"] += s.n_calls
        stats["masked"].update(s.masked)
        stats["key_tokens"] += s.n_key_tokens
        for piece in [s] if unit == "trajectory" else split_turns(s):
            if len(piece.input_ids) > max_seq_len:
                stats["overlong"] += 1
                if overlong == "drop":
                    continue
                piece.input_ids, piece.weights = piece.input_ids[:max_seq_len], piece.weights[:max_seq_len]
            if not any(piece.weights[1:]):
                stats["untrained"] += 1
                continue
            stats["trained_tokens"] += sum(w > 0 for w in piece.weights[1:])
            samples.append(piece)
    return samples, stats


# ----------------------------------------------------------------------------- loss
def weighted_token_loss(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, normaliser: float | torch.Tensor
) -> torch.Tensor:
    """L_MAE / L_PKT (paper Sec. 3.1-3.2): sum_t w_t * -log p(target_t) / normaliser. logits
    [..., V] (upcast to float32), targets and weights [...] (e.g. [B, T], or [N] for selected
    positions); `normaliser`: the step's global sum of weights."""
    vocab = logits.shape[-1]
    nll = F.cross_entropy(logits.float().reshape(-1, vocab), targets.reshape(-1), reduction="none")  # [B*T]
    return (nll * weights.reshape(-1).to(nll.dtype)).sum() / normaliser


def step_normaliser(micro_batches: list[dict], sample_unit: str, info: DistInfo) -> torch.Tensor:
    """The loss normaliser of one optimizer step, given this rank's collated micro-batches: the
    global sum of weights over every micro-batch on every rank (see the module docstring).
    Sample unit "turn" first rescales each sample's weights to sum to 1 (in place), so each is
    its own weighted mean and the step their mean over samples (the authors' normalisation)."""
    if sample_unit not in SAMPLE_UNITS:
        raise ValueError(f"sample_unit must be one of {SAMPLE_UNITS}; found {sample_unit!r}")
    if sample_unit == "turn":
        for batch in micro_batches:
            batch["weights"] = batch["weights"] / batch["weights"].sum(1, keepdim=True)  # [B, T]
    local = sum(batch["weights"].sum() for batch in micro_batches)
    return all_reduce_sum(local, info)


# ----------------------------------------------------------------------------- data order
def short_first_pool(lengths: list[int], global_batch: int) -> list[int]:
    """The samples warm-up steps draw from: the shortest third (at least 20 batches' worth)."""
    # Why: a small model learns to copy a value from the question far sooner when the context
    # it searches is short (docs/MEASUREMENTS.md, "Demo"), and the skill then carries over.
    shortest = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return shortest[: min(len(lengths), max(20 * global_batch, len(lengths) // 3))]


def short_first_batch(pool: list[int], global_batch: int, seed: int, step: int) -> list[int]:
    """A warm-up step's global batch: `global_batch` distinct samples of `pool`, seeded by (seed, step)."""
    return random.Random(seed * 1_000_003 + step).sample(pool, global_batch)


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
    return {
        "input_ids": ids[:, :-1].to(device),
        "targets": ids[:, 1:].to(device),
        "weights": weights[:, 1:].to(device),
        "attention_mask": mask[:, :-1].to(device) if padded else None,
    }
