"""Batched KV-cached generation over left-padded prompts: greedy or temperature/top-p sampling."""

import weakref
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Generation:
    """Per prompt: the new token ids (cut after the first EOS, EOS included), the log-prob of
    each under the sampling distribution, the decoded text (when a tokenizer was given; cut
    before a stop string) and why the row ended: "eos", "stop" (a stop string) or "length"."""

    tokens: list[list[int]]
    logprobs: list[list[float]]
    finish_reasons: list[str]
    texts: list[str] | None = None


def sample_next(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0,
                generator: torch.Generator | None = None):
    """Picks one token per row of `logits` [B, V] -> (tokens [B], logprobs [B]).

    temperature 0 is greedy (argmax; the log-prob is under softmax(logits)). Otherwise the
    token is drawn from softmax(logits / T) restricted to the top-p nucleus (the smallest set of
    most likely tokens whose mass reaches top_p), and its log-prob is under the full
    softmax(logits / T) -- the distribution a policy-gradient step recomputes from the model.
    """
    if temperature == 0.0:
        tokens = logits.argmax(-1)
        return tokens, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]
    logprobs = torch.log_softmax(logits / temperature, -1)
    probs = logprobs.exp()
    if top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        # keep a token if the mass strictly before it is below top_p (the first always stays)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        probs = probs.scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
    tokens = torch.multinomial(probs, 1, generator=generator)[:, 0]
    return tokens, logprobs.gather(-1, tokens[:, None])[:, 0]


def _any_running(running: torch.Tensor) -> bool:
    """True while any row on any rank still generates. Under torch.distributed every rank must
    run the same number of forward passes (FSDP all-gathers inside forward), so the flag is
    all-reduced: a rank whose rows are done keeps stepping until all ranks are done."""
    flag = running.any().to(torch.int32)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag)


def _decode_head(model) -> torch.Tensor | None:
    """lm_head's weight as a contiguous [hidden, vocab] copy, for decoding on CPU; else None.

    At batch 1 a decode step is a matrix-vector product per weight, bound by how fast the weights
    stream from memory. On CPU, MKL reads `x @ W` (W stored [in, out]) about 2.4x faster than
    `nn.Linear`'s `x @ W.T` (W stored [out, in]) on this project's machines, and the vocab
    projection is the largest single matrix (a third of a 20M-parameter model's weights). The copy
    (vocab x hidden elements: 0.26 GB for CodeLLaMA-7B in bf16) takes ~60 ms for a 32016 x 512
    head here, so it is kept with the module and remade only when the weight changes (its
    version counter moves on every in-place update: optimizer steps, load_state_dict): evaluation
    pays it once, PPO once per step. Skipped for sharded (FSDP) models, whose weights are not
    local, and on GPUs, where cuBLAS is indifferent to the layout.
    """
    head = getattr(model, "lm_head", None)
    weight = getattr(head, "weight", None)
    if not isinstance(head, torch.nn.Linear) or weight is None or weight.device.type != "cpu":
        return None
    if (dist.is_available() and dist.is_initialized()) or type(weight.data) is not torch.Tensor:
        return None  # FSDP2 parameters are DTensors; their full weight exists only inside forward
    key = (weight.data_ptr(), weight._version, weight.dtype)
    cached = _decode_heads.get(head)
    if cached is None or cached[0] != key:
        cached = _decode_heads[head] = (key, weight.detach().t().contiguous())
    return cached[1]


_decode_heads = weakref.WeakKeyDictionary()  # lm_head module -> (weight key, transposed copy)


def _first_stop(text: str, stop_strings) -> int:
    """Index of the earliest stop string in `text`, or -1."""
    hits = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return min(hits) if hits else -1


def generate(model, prompts: list[list[int]], *, max_new_tokens: int, eos_id: int, pad_id: int,
             temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
             stop_strings: list[str] | None = None, tokenizer=None) -> Generation:
    """Continues each prompt (a list of token ids) by up to `max_new_tokens` tokens.

    Prompts are left-padded into one batch; positions come from the attention mask, so each
    row is computed exactly as if alone. A row stops at `eos_id` or once its decoded text
    contains one of `stop_strings` (needs `tokenizer`). Runs under `torch.no_grad()` and
    restores the model's train/eval mode. `seed` seeds a private generator (sampling only).
    """
    if stop_strings and tokenizer is None:
        raise ValueError("stop_strings need a tokenizer to decode the generated text")
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
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    stop_window = 4 * max((len(s) for s in stop_strings or [""]), default=0) + 4  # tokens

    new_tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    new_logprobs = torch.zeros(batch, max_new_tokens, device=device)
    running = torch.ones(batch, dtype=torch.bool, device=device)
    stop_lengths: dict[int, int] = {}  # row -> number of tokens when its stop string completed
    steps = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            head = _decode_head(model)

            def forward(ids, **kwargs):
                if head is None:
                    return model(ids, **kwargs)
                return model(ids, return_hidden=True, **kwargs) @ head

            cache = model.new_cache(prompt_len + max_new_tokens)
            logits = forward(input_ids, attention_mask=mask[:, :prompt_len] if padded else None,
                             cache=cache, logits_to_keep=1)
            for step in range(max_new_tokens):
                tokens, logprobs = sample_next(logits[:, -1].float(), temperature, top_p, generator)
                tokens = torch.where(running, tokens, pad_id)
                new_tokens[:, step], new_logprobs[:, step] = tokens, logprobs
                steps = step + 1
                running &= tokens != eos_id
                if stop_strings:
                    for row in running.nonzero()[:, 0].tolist():
                        # a stop string that completes now lies within the last few tokens
                        tail = new_tokens[row, max(0, steps - stop_window):steps].tolist()
                        if _first_stop(tokenizer.decode(tail, continuation=True), stop_strings) >= 0:
                            running[row] = False
                            stop_lengths[row] = steps
                if steps == max_new_tokens or not _any_running(running):
                    break
                logits = forward(tokens[:, None], cache=cache,
                                 attention_mask=mask[:, : prompt_len + steps] if padded else None)
    finally:
        model.train(was_training)

    result = Generation(tokens=[], logprobs=[], finish_reasons=[],
                        texts=[] if tokenizer is not None else None)
    for row, (ids, lps) in enumerate(zip(new_tokens[:, :steps].tolist(),
                                         new_logprobs[:, :steps].tolist())):
        reason = "length"
        if row in stop_lengths:  # later slots hold padding
            ids, reason = ids[: stop_lengths[row]], "stop"
        elif eos_id in ids:
            ids, reason = ids[: ids.index(eos_id) + 1], "eos"
        result.tokens.append(ids)
        result.logprobs.append(lps[: len(ids)])
        result.finish_reasons.append(reason)
        if tokenizer is not None:
            text = tokenizer.decode(ids, continuation=True)
            cut = _first_stop(text, stop_strings) if stop_strings else -1
            result.texts.append(text[:cut] if cut >= 0 else text)
    return result
