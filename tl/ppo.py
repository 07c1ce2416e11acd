"""PPO with the error-category reward (paper Sec. 3.3): max_M E_D [sum_s R(t_s) - beta KL(M || M_sft)].

The math as pure tensor functions, the critic, the training prompts, and scored rollouts. A batch
is `[B, P + R]` ids, the prompt left-padded to P, the response right-padded to R (pad, never EOS);
per-token tensors are `[B, R]` with a `mask` of the tokens that count (up to and including EOS,
not padding). Losses are a token *sum* over a caller-given count (the
global one over micro-batches and ranks gives a true mean). Defaults are the paper's code: GAE
gamma 1, lambda 0.95, policy and value clip 0.2, a fixed beta, no advantage whitening.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn as nn

from tl.calls import EOS_MARK, assistant_calls, render_prompt
from tl.classify import (
    ALL_RIGHT,
    PARAM_HALLUCINATION,
    PARAM_MISSING,
    PARAM_REDUNDANT,
    Classification,
    call_reward,
    classify,
)
from tl.dist import any_rank
from tl.episode import Episode, Item, Task
from tl.generate import generate


def shift_to_response(x: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """`x[:, P-1:-1]` of a `[B, P+R, ...]` output: the positions that predict the response tokens
    (for logits and, as in the paper's code, values: V_t is the state before token t)."""
    if not 0 < prompt_len < x.shape[1]:
        raise ValueError(
            f"prompt_len must be in 1..{x.shape[1] - 1} for an output of shape {tuple(x.shape)}, got {prompt_len}"
        )
    return x[:, prompt_len - 1 : -1]  # [B, R, ...]


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(token) [B, R] under softmax(logits / T) in fp32 (T = the sampling temperature, or
    ratio and KL are of another distribution); `logits` [B, R, V] aligned with `tokens` [B, R]."""
    logits = logits.float() / temperature
    chosen = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # [B, R]
    return chosen - torch.logsumexp(logits, dim=-1)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of softmax(logits / T) per position: [B, R, V] -> [B, R], fp32."""
    z = logits.float() / temperature
    return torch.logsumexp(z, dim=-1) - (torch.softmax(z, dim=-1) * z).sum(-1)


def kl_k1(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate k1 = log pi - log pi_ref [B, R] (the paper's code; unbiased, may be
    negative)."""
    return logp - logp_ref


def last_valid_index(mask: torch.Tensor) -> torch.Tensor:
    """Each row's last valid response position [B] (its EOS, or the last token if cut); 0 if empty."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)  # [B, R]
    return torch.where(mask.bool(), positions, torch.zeros_like(positions)).amax(dim=1)


def place_scores(scores: torch.Tensor, positions: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Dense `[B, R]`: `scores[b, k]` at `positions[b, k]` (-1: none), 0 elsewhere. Scores and
    positions are [B, K], or [B] for one score per row."""
    if scores.dim() == 1:
        scores = scores[:, None]  # [B, 1]
        positions = positions[:, None]
    dense = torch.zeros(shape, dtype=torch.float32, device=scores.device)  # [B, R]
    placed = torch.where(positions >= 0, scores.float(), 0.0)  # a "none" adds 0 at position 0
    return dense.scatter_add_(1, positions.clamp(min=0), placed)


def token_rewards(
    kl: torch.Tensor, mask: torch.Tensor, kl_coef: float, score_per_token: torch.Tensor
) -> torch.Tensor:
    """r_t = -beta kl_t + score_t on valid tokens [B, R], so a row's rewards sum to
    score - beta sum kl."""
    return torch.where(mask.bool(), -kl_coef * kl + score_per_token, 0.0)


@torch.no_grad()
def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over [B, R]: A_t = r_t + gamma V_{t+1} - V_t + gamma lam A_{t+1} (V after the end = 0),
    returns = A + V. Masked positions are skipped (t+1 = the next valid token) and 0 in the outputs."""
    mask = mask.bool()
    advantages = torch.zeros_like(values, dtype=torch.float32)  # [B, R]
    next_value = torch.zeros(values.shape[0], dtype=torch.float32, device=values.device)  # [B]: V_{t+1}
    next_advantage = torch.zeros_like(next_value)  # [B]: A_{t+1}
    for t in reversed(range(values.shape[1])):
        valid = mask[:, t]  # [B]
        value = values[:, t].float()  # [B]
        delta = rewards[:, t].float() + gamma * next_value - value
        advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = torch.where(valid, advantage, 0.0)
        # a masked position (feedback inside a multi-turn sequence) passes the next values through
        next_value = torch.where(valid, value, next_value)
        next_advantage = torch.where(valid, advantage, next_advantage)
    returns = torch.where(mask, advantages + values.float(), 0.0)
    return advantages, returns


def _masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, x, 0.0).sum()


def policy_loss(logp, logp_old, advantages, mask, n_tokens=None, clip_eps: float = 0.2):
    """PPO-clip over [B, R]: sum_t max(-A_t r_t, -A_t clip(r_t, 1 -+ eps)) / n_tokens, r_t = pi / pi_old.
    Stats are token sums: `clipped`, `approx_kl` (k3 = (r - 1) - log r) and `ratio`."""
    mask = mask.bool()
    n = mask.sum().clamp(min=1) if n_tokens is None else n_tokens
    # `where`, not `* mask`: garbage at masked positions (inf, nan) must not reach exp or the sum
    log_ratio = torch.where(mask, logp - logp_old, 0.0)  # [B, R]
    advantages = torch.where(mask, advantages, 0.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = _masked_sum(torch.maximum(unclipped, clipped), mask) / n  # pessimistic: the larger loss
    with torch.no_grad():
        stats = {
            "clipped": _masked_sum((clipped > unclipped).float(), mask),
            "approx_kl": _masked_sum((ratio - 1.0) - log_ratio, mask),
            "ratio": _masked_sum(ratio, mask),
        }
    return loss, stats


def value_loss(values, values_old, returns, mask, n_tokens=None, clip_eps: float = 0.2):
    """0.5 sum_t max((V - R)^2, (clip(V, V_old -+ eps) - R)^2) / n_tokens over [B, R]; stat
    `clipped` (a token sum)."""
    mask = mask.bool()
    n = mask.sum().clamp(min=1) if n_tokens is None else n_tokens
    values = torch.where(mask, values, 0.0)
    values_old = torch.where(mask, values_old, 0.0)
    returns = torch.where(mask, returns, 0.0)
    err = (values - returns) ** 2  # [B, R]
    clipped_values = values_old + torch.clamp(values - values_old, -clip_eps, clip_eps)
    err_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * _masked_sum(torch.maximum(err, err_clipped), mask) / n
    return loss, {"clipped": _masked_sum((err_clipped > err).float().detach(), mask)}


class Critic(nn.Module):
    """V(s_t): the SFT trunk's final hidden state -> a zero-initialised `Linear(hidden, 1)` (the
    paper's code), so the first values are 0. The trunk's output layer goes (a tied trunk keeps
    its embedding, which it still reads its input with); `forward` calls the trunk itself, so
    FSDP2's hooks on it fire."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        if hasattr(trunk, "lm_head"):
            del trunk.lm_head
        self.trunk = trunk
        norm = trunk.model.norm.weight
        self.value_head = nn.Linear(trunk.args.hidden_size, 1, dtype=norm.dtype, device=norm.device)
        for p in self.value_head.parameters():
            nn.init.zeros_(p)

    @property
    def layers(self) -> nn.ModuleList:
        return self.trunk.layers

    def forward(self, input_ids, attention_mask=None, logits_to_keep: int | None = None) -> torch.Tensor:
        """Values `[B, T]` (fp32) at each position (the last `logits_to_keep` only, if given)."""
        hidden = self.trunk(
            input_ids, attention_mask, return_hidden=True, logits_to_keep=logits_to_keep
        )  # [B, T, D]
        return self.value_head(hidden).squeeze(-1).float().clone()  # clone: FSDP2 warns on a view output


def prompts_from_trajectories(records: list[dict]) -> tuple[list[Item], Counter]:
    """One prompt (an Item: tools, the history, the gold call) per assistant call whose feedback is
    `all_right` (the paper's filter). Counts: `calls`, `kept`, `dropped_<reason>` (the feedback
    category, `no_feedback`, or `parallel`: several calls in one turn)."""
    prompts = []
    counts = Counter()
    for record in records:
        for i, category in sorted(record["feedback"].items()):
            calls = assistant_calls(record["messages"][i])
            counts["calls"] += 1
            if len(calls) != 1:
                counts["dropped_parallel"] += 1
            elif category is None:
                counts["dropped_no_feedback"] += 1
            elif category != ALL_RIGHT:
                counts[f"dropped_{category}"] += 1
            else:
                counts["kept"] += 1
                item_id = f"{record.get('id', '?')}@{i}"
                history = record["messages"][:i]
                prompts.append(Item(item_id, "train", record["tools"], history, calls, "strict"))
    return prompts, counts


def encode_prompt(tokenizer, prompt: Item | Task) -> list[int]:
    """Token ids of the generation prompt (a Task's: its query alone), as SFT and evaluation render it."""
    messages = prompt.messages if isinstance(prompt, Item) else [{"role": "user", "content": prompt.query}]
    return tokenizer.encode_chat(render_prompt(prompt.tools, messages))


def score_response(text: str, prompt: Item) -> tuple[float, str]:
    """R(t) of one generated output and its category (the same `tl.classify` evaluation uses)."""
    c = classify(text, prompt.gold, prompt.tools)
    return call_reward(c), c.category


@dataclass
class Rollout:
    """A micro-batch: input_ids / attention_mask `[B, P + R]`, response_mask `[B, R]`, the texts, the
    scores -- `[B]`, each at its row's last valid token, or `[B, K]` at `score_positions` (response
    indices, -1: none; multi-turn: one per output that made calls) -- and their categories;
    `score` and `compute_advantages` fill the per-token `[B, R]` tensors."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    texts: list[str]
    scores: torch.Tensor
    categories: list[str]
    score_positions: torch.Tensor | None = None
    logp_old: torch.Tensor | None = None
    logp_ref: torch.Tensor | None = None
    values: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    @property
    def response_len(self) -> int:
        return self.response_mask.shape[1]


def pack(prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """(input_ids [B, P + R], attention_mask [B, P + R], response_mask [B, R]): each prompt
    left-padded to P (the longest), each response right-padded to R (at least 1)."""
    B = len(prompts)
    P = max(len(p) for p in prompts)
    R = max(max(len(r) for r in responses), 1)
    input_ids = torch.full((B, P + R), pad_id, dtype=torch.long)
    attention_mask = torch.zeros(B, P + R, dtype=torch.long)
    for b, (prompt, response) in enumerate(zip(prompts, responses)):
        start, end = P - len(prompt), P + len(response)  # prompt ends at P, the response starts there
        input_ids[b, start:end] = torch.tensor(prompt + response, dtype=torch.long)
        attention_mask[b, start:end] = 1
    return input_ids, attention_mask, attention_mask[:, P:].clone()


def response_logprobs(
    model, input_ids, attention_mask, response_len: int, temperature: float = 1.0, with_entropy: bool = False
):
    """log pi(response token) `[B, R]` (and the entropy), projecting only the last R + 1 positions."""
    last = model(input_ids, attention_mask, logits_to_keep=response_len + 1)  # [B, R + 1, V]
    logits = shift_to_response(last, 1)  # [B, R, V]: each predicts the next response token
    logp = token_logprobs(logits, input_ids[:, -response_len:], temperature)
    return logp, token_entropy(logits, temperature) if with_entropy else None


def response_values(critic: Critic, input_ids, attention_mask, response_len: int) -> torch.Tensor:
    """V_t `[B, R]`: the critic's value at the position that predicts response token t."""
    return shift_to_response(critic(input_ids, attention_mask, logits_to_keep=response_len + 1), 1)


def rollout(
    actor,
    tokenizer,
    prompts: list[Item],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int | None = None,
) -> Rollout:
    """One scored response per prompt (cut after EOS); under FSDP every rank calls it equally often."""
    ids = [encode_prompt(tokenizer, p) for p in prompts]
    gen = generate(
        actor,
        ids,
        max_new_tokens=max_new_tokens,
        eos_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id,
        temperature=temperature,
        seed=seed,
        tokenizer=tokenizer,
    )
    scored = [score_response(text, prompt) for text, prompt in zip(gen.texts, prompts)]
    input_ids, attention_mask, response_mask = pack(ids, gen.tokens, tokenizer.pad_id)
    scores = torch.tensor([reward for reward, _ in scored])  # [B]
    categories = [category for _, category in scored]
    return Rollout(input_ids, attention_mask, response_mask, list(gen.texts), scores, categories)


def category_reward(category: str) -> float:
    """R(t) of a call known only by its category (an online episode has no gold call)."""
    flags = {
        "hallucinated": category == PARAM_HALLUCINATION,
        "redundant": category == PARAM_REDUNDANT,
        "missing": category == PARAM_MISSING,
    }
    return call_reward(Classification(category, flags))


def tasks_from_trajectories(records: list[dict]) -> list[Task]:
    """Multi-turn PPO's tasks: one per trajectory, its tools and its first user message as the query."""
    return [
        Task(r.get("id", str(i)), "train", r["tools"], r["messages"][0]["content"])
        for i, r in enumerate(records)
        if r["messages"] and r["messages"][0].get("role") == "user"
    ]


def episode_rollout(
    actor,
    tokenizer,
    tasks: list[Task],
    executor,
    *,
    max_turns: int,
    max_new_tokens: int,
    max_len: int,
    temperature: float = 0.0,
    seed: int | None = None,
) -> Rollout:
    """One `tl.episode.Episode` per task, packed as one sequence: prompt_0 + out_0 + obs_0 + out_1 + ...
    where out_t are the sampled tokens and obs_t the feedback `\\nOutput: ...\\nAssistant:` encoded as a
    continuation. Each turn is generated from exactly this sequence (not a re-rendered prompt), so
    rollout and update see the same context. obs tokens are masked out (no loss, no KL; GAE skips
    them). Each output that made calls gets one score at its last token: its worst call's R(t), from
    the episode's feedback categories. An episode also ends when its sequence would pass `max_len`."""
    episodes = [Episode(t.tools, t.query, executor, max_turns=max_turns) for t in tasks]
    prompts = [tokenizer.encode_chat(ep.prompt()) for ep in episodes]
    tokens = [[] for _ in tasks]  # per episode: out_0 + obs_0 + out_1 + ...
    trained = [[] for _ in tasks]  # per token of `tokens`: 1 for the model's own, 0 for feedback
    calls = [[] for _ in tasks]  # per episode: (position in `tokens`, worst call category) per output
    device = next(actor.parameters()).device
    for turn in range(max_turns):
        active = [
            i
            for i, ep in enumerate(episodes)
            if not ep.done and len(prompts[i]) + len(tokens[i]) + max_new_tokens <= max_len
        ]
        if not any_rank(bool(active), device):  # every rank generates equally often under FSDP
            break
        inputs = [prompts[i] + tokens[i] for i in active]
        if not inputs:
            inputs = [[tokenizer.bos_id]]  # this rank is done: a stand-in keeps the ranks in step
        gen = generate(
            actor,
            inputs,
            max_new_tokens=max_new_tokens,
            eos_id=tokenizer.eos_id,
            pad_id=tokenizer.pad_id,
            temperature=temperature,
            seed=None if seed is None else seed + turn,
            tokenizer=tokenizer,
        )
        for i, ids, text in zip(active, gen.tokens, gen.texts):
            step = episodes[i].step(text)
            tokens[i] += ids
            trained[i] += [1] * len(ids)
            if step.calls:  # the worst call's score, as for single-turn extra calls: no +1 per repeated call
                worst = min((c.category for c in step.calls), key=category_reward)
                calls[i].append((len(tokens[i]) - 1, worst))
            if not episodes[i].done:
                prompt = episodes[i].prompt()  # what follows the last EOS: the feedback and the next header
                obs = tokenizer.encode_continuation(prompt[prompt.rindex(EOS_MARK) + len(EOS_MARK) :])
                tokens[i] += obs
                trained[i] += [0] * len(obs)
    input_ids, attention_mask, response_mask = pack(prompts, tokens, tokenizer.pad_id)  # [B, P + R], [B, R]
    most_calls = max(1, *map(len, calls))
    positions = torch.full((len(tasks), most_calls), -1, dtype=torch.long)  # [B, K]; -1: no score
    scores = torch.zeros(positions.shape)  # [B, K]
    for b in range(len(tasks)):
        response_mask[b, : len(trained[b])] = torch.tensor(trained[b], dtype=torch.long)  # feedback out
        for k, (position, category) in enumerate(calls[b]):
            positions[b, k] = position
            scores[b, k] = category_reward(category)
    answers = [ep.answer or "" for ep in episodes]
    categories = [category for per_episode in calls for _, category in per_episode]
    return Rollout(input_ids, attention_mask, response_mask, answers, scores, categories, positions)


@torch.no_grad()
def score(batch: Rollout, actor, reference, critic: Critic, temperature: float = 1.0) -> Rollout:
    """Old and reference log-probs and values, one eval-mode forward each (not generation's own
    log-probs: KV-cached steps differ in the last bits, and the first ratio must be exactly 1).
    `temperature`: the sampling one (1 for greedy)."""
    device = next(actor.parameters()).device
    ids = batch.input_ids.to(device)  # [B, P + R]
    mask = batch.attention_mask.to(device)
    R = batch.response_len
    models = (actor, reference, critic)
    modes = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        batch.logp_old, batch.entropy = response_logprobs(actor, ids, mask, R, temperature, with_entropy=True)
        batch.logp_ref, _ = response_logprobs(reference, ids, mask, R, temperature)
        batch.values = response_values(critic, ids, mask, R)
    finally:
        for m, was_training in zip(models, modes):
            m.train(was_training)
    return batch


def compute_advantages(batch: Rollout, kl_coef: float, gamma: float = 1.0, lam: float = 0.95) -> torch.Tensor:
    """Token rewards (-beta k1 + each score at its token), GAE into `advantages` / `returns`;
    returns the per-token KL `[B, R]` for logging."""
    mask = batch.response_mask.to(batch.values.device).bool()  # [B, R]
    kl = kl_k1(batch.logp_old, batch.logp_ref)  # [B, R]
    if batch.score_positions is None:
        positions = last_valid_index(mask)  # [B]: one score per row, at its last valid token
    else:
        positions = batch.score_positions.to(mask.device)  # [B, K]
    scores = place_scores(batch.scores.to(mask.device), positions, mask.shape)  # [B, R]
    rewards = token_rewards(kl, mask, kl_coef, scores)
    batch.advantages, batch.returns = gae(rewards, batch.values, mask, gamma, lam)
    return torch.where(mask, kl, 0.0)
