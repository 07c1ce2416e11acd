"""Batched KV-cached generation over left-padded prompts: greedy or temperature sampling."""

from dataclasses import dataclass

import torch

from tl.dist import any_rank, gathered


@dataclass
class Generation:
    """Per prompt: the new ids (cut after the first EOS, included) and the text (given a tokenizer).
    No log-probs: PPO recomputes them in one forward (tl.ppo.score), where the first ratio is exactly 1."""

    tokens: list[list[int]]
    texts: list[str] | None = None


def sample_next(logits: torch.Tensor, temperature: float = 0.0, generator: torch.Generator | None = None):
    """One token per row of `logits` [B, V]: greedy at temperature 0, else drawn from softmax(logits / T)."""
    if temperature == 0.0:
        return logits.argmax(-1)
    probabilities = torch.log_softmax(logits / temperature, -1).exp()  # [B, V]
    return torch.multinomial(probabilities, 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(
    model,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    temperature: float = 0.0,
    seed: int | None = None,
    tokenizer=None,
) -> Generation:
    """Continue each prompt (token ids) by up to `max_new_tokens`, stopping a row at EOS. Prompts
    are left-padded into one batch, each row computed exactly as if alone; the model's train mode
    is restored; `seed` seeds a private generator; under FSDP every rank runs as many steps."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (e.g. BOS)")
    device = next(model.parameters()).device
    batch = len(prompts)
    prompt_len = max(len(p) for p in prompts)  # P: every prompt ends at position P - 1
    total = prompt_len + max_new_tokens
    input_ids = torch.full((batch, prompt_len), pad_id, dtype=torch.long)  # [B, P], left-padded
    mask = torch.ones(batch, total, dtype=torch.long)  # [B, P + new]: 0 on each row's left padding
    for row, prompt in enumerate(prompts):
        pad = prompt_len - len(prompt)
        input_ids[row, pad:] = torch.tensor(prompt, dtype=torch.long)
        mask[row, :pad] = 0
    input_ids = input_ids.to(device)
    mask = mask.to(device)
    padded = any(len(p) != prompt_len for p in prompts)  # no padding: no mask needed at all
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    new_tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)  # [B, new]
    running = torch.ones(batch, dtype=torch.bool, device=device)  # [B]: not yet at EOS
    steps = 0
    was_training = model.training
    model.eval()
    try:
        with gathered(model):  # under FSDP: weights gathered once, not once per token
            cache = model.new_cache(total)
            prefill_mask = mask[:, :prompt_len] if padded else None
            logits = model(input_ids, attention_mask=prefill_mask, cache=cache, logits_to_keep=1)  # [B, 1, V]
            for step in range(max_new_tokens):
                sampled = sample_next(logits[:, -1].float(), temperature, generator)  # [B]
                tokens = torch.where(running, sampled, pad_id)  # a finished row only pads
                new_tokens[:, step] = tokens
                steps = step + 1
                running &= tokens != eos_id
                if steps == max_new_tokens or not any_rank(running.any(), device):
                    break
                step_mask = mask[:, : prompt_len + steps] if padded else None
                logits = model(tokens[:, None], cache=cache, attention_mask=step_mask)  # [B, 1, V]
    finally:
        model.train(was_training)
    rows = []
    for ids in new_tokens[:, :steps].tolist():
        rows.append(ids[: ids.index(eos_id) + 1] if eos_id in ids else ids)  # cut after EOS, EOS kept
    texts = None if tokenizer is None else [tokenizer.decode(ids, continuation=True) for ids in rows]
    return Generation(rows, texts)
