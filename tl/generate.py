"""Batched KV-cached generation over left-padded prompts: greedy or temperature/top-p sampling."""

from dataclasses import dataclass

import torch

from tl.dist import any_rank


@dataclass
class Generation:
    """Per prompt: the new token ids (cut after the first EOS, EOS included), the log-prob of each
    under the sampling distribution, why the row ended ("eos" or "length") and the decoded text
    (when a tokenizer was given)."""

    tokens: list[list[int]]
    logprobs: list[list[float]]
    finish_reasons: list[str]
    texts: list[str] | None = None


def sample_next(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0,
                generator: torch.Generator | None = None):
    """One token per row of `logits` [B, V] -> (tokens [B], logprobs [B]).

    temperature 0 is greedy (the log-prob is under softmax(logits)). Otherwise the token is drawn
    from softmax(logits / T) restricted to the top-p nucleus (the smallest set of most likely
    tokens whose mass reaches top_p), and its log-prob is under the full softmax(logits / T):
    the distribution a policy-gradient step recomputes from the model.
    """
    if temperature == 0.0:
        tokens = logits.argmax(-1)
        return tokens, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]
    logprobs = torch.log_softmax(logits / temperature, -1)
    probs = logprobs.exp()
    if top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p  # the mass before a token reaches top_p
        probs = probs.scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
    tokens = torch.multinomial(probs, 1, generator=generator)[:, 0]
    return tokens, logprobs.gather(-1, tokens[:, None])[:, 0]


@torch.no_grad()
def generate(model, prompts: list[list[int]], *, max_new_tokens: int, eos_id: int, pad_id: int,
             temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None, tokenizer=None) -> Generation:
    """Continue each prompt (token ids) by up to `max_new_tokens` tokens, stopping a row at EOS.

    Prompts are left-padded into one batch; positions come from the attention mask, so each row
    is computed exactly as if alone. Restores the model's train/eval mode. `seed` seeds a private
    generator (sampling only). Under FSDP every rank runs the same number of steps.
    """
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
            tokens, logprobs = sample_next(logits[:, -1].float(), temperature, top_p, generator)
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
