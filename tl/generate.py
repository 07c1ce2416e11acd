"""Batched KV-cached generation over left-padded prompts: greedy or temperature sampling."""

from dataclasses import dataclass

import torch

from tl.dist import any_rank

@dataclass
class Generation:
    """Per prompt: the new ids (cut after the first EOS, included), each one's log-prob under the
    sampling distribution, why the row ended ("eos" or "length"), the text (given a tokenizer)."""
    tokens: list[list[int]]
    logprobs: list[list[float]]
    finish_reasons: list[str]
    texts: list[str] | None = None

def sample_next(logits: torch.Tensor, temperature: float = 0.0, generator: torch.Generator | None = None):
    """One token per row of `logits` [B, V] -> (tokens [B], logprobs [B]). Temperature 0 is greedy;
    otherwise drawn from softmax(logits / T), with its log-prob under it (what PPO recomputes)."""
    if temperature == 0.0:
        tokens = logits.argmax(-1)
        return tokens, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]
    logprobs = torch.log_softmax(logits / temperature, -1)
    tokens = torch.multinomial(logprobs.exp(), 1, generator=generator)[:, 0]
    return tokens, logprobs.gather(-1, tokens[:, None])[:, 0]

@torch.no_grad()
def generate(model, prompts: list[list[int]], *, max_new_tokens: int, eos_id: int, pad_id: int,
             temperature: float = 0.0, seed: int | None = None, tokenizer=None) -> Generation:
    """Continue each prompt (token ids) by up to `max_new_tokens`, stopping a row at EOS. Prompts
    are left-padded into one batch, each row computed exactly as if alone; the model's train mode
    is restored; `seed` seeds a private generator; under FSDP every rank runs as many steps."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (e.g. BOS)")
    device = next(model.parameters()).device
    batch, prompt_len = len(prompts), max(len(p) for p in prompts)
    input_ids = torch.full((batch, prompt_len), pad_id, dtype=torch.long)
    mask = torch.ones(batch, prompt_len + max_new_tokens, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, prompt_len - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        mask[row, : prompt_len - len(prompt)] = 0
    input_ids, mask = input_ids.to(device), mask.to(device)
    padded = any(len(p) != prompt_len for p in prompts)  # no padding: no mask needed at all
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    new_tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    new_logprobs = torch.zeros(batch, max_new_tokens, device=device)
    running = torch.ones(batch, dtype=torch.bool, device=device)
    steps, was_training = 0, model.training
    model.eval()
    try:
        cache = model.new_cache(prompt_len + max_new_tokens)
        logits = model(input_ids, attention_mask=mask[:, :prompt_len] if padded else None, cache=cache, logits_to_keep=1)
        for step in range(max_new_tokens):
            tokens, logprobs = sample_next(logits[:, -1].float(), temperature, generator)
            tokens = torch.where(running, tokens, pad_id)
            new_tokens[:, step], new_logprobs[:, step] = tokens, logprobs
            steps = step + 1
            running &= tokens != eos_id
            if steps == max_new_tokens or not any_rank(running.any(), device):
                break
            logits = model(tokens[:, None], cache=cache, attention_mask=mask[:, : prompt_len + steps] if padded else None)
    finally:
        model.train(was_training)
    result = Generation([], [], [], [] if tokenizer is not None else None)
    for ids, lps in zip(new_tokens[:, :steps].tolist(), new_logprobs[:, :steps].tolist()):
        ended = eos_id in ids
        ids = ids[: ids.index(eos_id) + 1] if ended else ids
        result.tokens.append(ids)
        result.logprobs.append(lps[: len(ids)])
        result.finish_reasons.append("eos" if ended else "length")
        if tokenizer is not None:
            result.texts.append(tokenizer.decode(ids, continuation=True))
    return result
