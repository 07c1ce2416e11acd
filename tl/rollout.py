"""PPO's data side: training prompts, the critic, and rollouts turned into scored tensors.

- Prompts (paper Sec. 4.4): every assistant call of the training trajectories whose feedback is
  `all_right` becomes (tools, history before the call, gold call); the paper kept 1,194 of 1,217
  this way. The model generates one call and the reward compares it with the gold call.
- `Critic`: the SFT trunk plus a zero-initialised `Linear(hidden, 1)` value head, as in the
  paper's code (DeepSpeed-Chat: critic = trunk + fresh value head).
- `rollout` / `score`: generate with the KV cache, pack prompt + response into one left/right
  padded batch, and compute old log-probs, reference log-probs and values from one forward each.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn as nn

from tl import ppo
from tl.classify import ALL_RIGHT, CALL_CATEGORIES, call_reward, classify
from tl.data import feedback_categories
from tl.generate import generate
from tl.calls import Call, render_prompt


# ----------------------------------------------------------------------------- prompts

@dataclass(frozen=True)
class Prompt:
    """One PPO prompt: predict `gold` after `messages` with `tools` available."""
    id: str
    tools: list
    messages: list
    gold: Call


def prompts_from_trajectories(records: list[dict], keep_erroneous: bool = False) -> tuple[list[Prompt], Counter]:
    """One prompt per single assistant call whose following feedback is `all_right` (the paper's
    filter), with the conversation before that call as history.

    Returns the prompts and counts: `calls` (all assistant calls), `kept`, and one
    `dropped_<category>` per reason: an erroneous feedback category (kept when `keep_erroneous`),
    `no_feedback` (the trajectory ends with the call) or `parallel` (several calls in one turn;
    the paper's reward scores one call).
    """
    prompts, counts = [], Counter()
    for record in records:
        categories = feedback_categories(record["messages"])
        for i, category in sorted(categories.items()):
            message = record["messages"][i]
            counts["calls"] += 1
            calls = message.get("tool_calls") or [message["tool_call"]]
            if len(calls) != 1:
                counts["dropped_parallel"] += 1
            elif category is None:
                counts["dropped_no_feedback"] += 1
            elif category != ALL_RIGHT and not keep_erroneous:
                counts[f"dropped_{category}"] += 1
            else:
                counts["kept"] += 1
                prompts.append(Prompt(f"{record.get('id', '?')}@{i}", record["tools"],
                                      record["messages"][:i], Call.from_dict(calls[0])))
    return prompts, counts


def encode_prompt(tokenizer, prompt: Prompt) -> list[int]:
    """Token ids of the generation prompt, exactly as SFT and evaluation render it."""
    return tokenizer.encode_chat(render_prompt(prompt.tools, prompt.messages, add_generation_prompt=True))


def score_response(text: str, prompt: Prompt) -> tuple[float, str]:
    """The paper's reward R(t) (Sec. 3.3) of one generated output, and its error category: the
    same `tl.classify` function evaluation uses, so extra calls are never +1 (-2 with a tool that
    is not offered, else at most -1.5)."""
    c = classify(text, prompt.gold, prompt.tools)
    return call_reward(c), c.category


# ----------------------------------------------------------------------------- critic

class Critic(nn.Module):
    """V(s_t): the SFT trunk's final hidden state -> `Linear(hidden, 1)`, zero-initialised.

    A zero head makes the first values exactly 0, so the first advantages are the plain GAE of
    the rewards, and the head learns from there instead of from random noise. The trunk's lm_head
    is deleted: the critic never projects to the vocabulary, and under FSDP an unused vocab-sized
    matrix would only cost memory (with tied embeddings the weight stays, as the embedding).
    `forward` calls the trunk itself, so FSDP2's pre-/post-forward hooks on it fire.
    """

    def __init__(self, trunk: nn.Module):
        super().__init__()
        if hasattr(trunk, "lm_head"):
            del trunk.lm_head
        self.trunk = trunk
        self.value_head = nn.Linear(trunk.args.hidden_size, 1, dtype=trunk.model.norm.weight.dtype,
                                    device=trunk.model.norm.weight.device)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    @property
    def layers(self) -> nn.ModuleList:
        return self.trunk.layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                logits_to_keep: int | None = None) -> torch.Tensor:
        """Values `[B, T]` (fp32) for each position (the last `logits_to_keep` only, if given)."""
        hidden = self.trunk(input_ids, attention_mask, return_hidden=True, logits_to_keep=logits_to_keep)
        # clone: FSDP2 hooks the root module's output, and warns when that output is a view
        return self.value_head(hidden).squeeze(-1).float().clone()


# ----------------------------------------------------------------------------- rollouts

@dataclass
class Rollout:
    """A micro-batch of prompt + response sequences with everything PPO needs.

    input_ids / attention_mask: `[B, P + R]`, prompts left-padded to P, responses right-padded to
    R with `pad_id` (never EOS). response_mask `[B, R]`: 1 up to and including EOS (or the last
    token of a truncated response). The per-token tensors are `[B, R]`, filled by `score` and
    `compute_advantages`.
    """
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    texts: list[str]
    scores: torch.Tensor          # [B] (after the optional clip), or [B, K] with score_positions
    categories: list[str]         # one per scored call
    score_positions: torch.Tensor | None = None  # [B, K] response index of each score, -1 = none;
                                                 # None = one score per row at its last valid token
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
    """(input_ids, attention_mask, response_mask) for prompts left-padded to the longest prompt
    and responses right-padded to the longest response (see `Rollout`)."""
    P = max(len(p) for p in prompts)
    R = max(max(len(r) for r in responses), 1)
    B = len(prompts)
    input_ids = torch.full((B, P + R), pad_id, dtype=torch.long)
    attention_mask = torch.zeros(B, P + R, dtype=torch.long)
    for b, (p, r) in enumerate(zip(prompts, responses)):
        input_ids[b, P - len(p):P] = torch.tensor(p, dtype=torch.long)
        input_ids[b, P:P + len(r)] = torch.tensor(r, dtype=torch.long)
        attention_mask[b, P - len(p):P + len(r)] = 1
    return input_ids, attention_mask, attention_mask[:, P:].clone()


def response_logprobs(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      response_len: int, temperature: float = 1.0,
                      with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(response token) `[B, R]` under softmax(logits / T), fp32, from one forward.

    Only the last R + 1 positions are projected to the vocabulary (`logits_to_keep`); of those,
    `shift_to_response` keeps the R that predict response tokens.
    """
    logits = model(input_ids, attention_mask, logits_to_keep=response_len + 1)
    logits = ppo.shift_to_response(logits, 1)
    logp = ppo.token_logprobs(logits, input_ids[:, -response_len:], temperature)
    entropy = ppo.token_entropy(logits, temperature) if with_entropy else None
    return logp, entropy


def response_values(critic: Critic, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    response_len: int) -> torch.Tensor:
    """V_t `[B, R]`: the critic's value at the position that predicts response token t."""
    values = critic(input_ids, attention_mask, logits_to_keep=response_len + 1)
    return ppo.shift_to_response(values, 1)


def rollout(actor: nn.Module, tokenizer, prompts: list[Prompt], *, max_new_tokens: int,
            temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
            score_clip: float | None = 5.0) -> Rollout:
    """Generate one response per prompt (KV cache, left padding, cut after EOS) and score it.

    Under FSDP every rank must call this the same number of times: `generate` keeps all ranks
    stepping until every rank's rows are done.
    """
    ids = [encode_prompt(tokenizer, p) for p in prompts]
    gen = generate(actor, ids, max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id,
                   temperature=temperature, top_p=top_p, seed=seed, tokenizer=tokenizer)
    scores, categories = zip(*(score_response(t, p) for t, p in zip(gen.texts, prompts)))
    scores = torch.tensor(scores, dtype=torch.float32)
    if score_clip is not None:  # the paper's code clips the score to +-5 (a no-op for R(t) in [-2, 1])
        scores = scores.clamp(-score_clip, score_clip)
    input_ids, attention_mask, response_mask = pack(ids, gen.tokens, tokenizer.pad_id)
    return Rollout(input_ids, attention_mask, response_mask, list(gen.texts), scores, list(categories))


@torch.no_grad()
def score(batch: Rollout, actor: nn.Module, reference: nn.Module, critic: Critic,
          temperature: float = 1.0) -> Rollout:
    """Old log-probs (actor), reference log-probs and values, one eval-mode forward each.

    The rollout's own log-probs from `generate` are not reused: they come from incremental
    KV-cache steps, which differ from a full forward in the last bits, and the PPO ratio must be
    exactly 1 before the first update. `temperature` must be the sampling one (1 for greedy).
    """
    device = next(actor.parameters()).device
    ids, mask, R = batch.input_ids.to(device), batch.attention_mask.to(device), batch.response_len
    modes = [m.training for m in (actor, reference, critic)]
    for m in (actor, reference, critic):
        m.eval()  # the model has no dropout today; eval keeps it that way if one is ever added
    try:
        batch.logp_old, batch.entropy = response_logprobs(actor, ids, mask, R, temperature, with_entropy=True)
        batch.logp_ref, _ = response_logprobs(reference, ids, mask, R, temperature)
        batch.values = response_values(critic, ids, mask, R)
    finally:
        for m, was_training in zip((actor, reference, critic), modes):
            m.train(was_training)
    return batch


def compute_advantages(batch: Rollout, kl_coef: float, gamma: float = 1.0, lam: float = 0.95) -> torch.Tensor:
    """Token rewards (-beta k1 KL + each score at its token: the last valid one by default), then
    GAE; fills `advantages` and `returns` and gives back the per-token KL `[B, R]` for logging."""
    mask = batch.response_mask.to(batch.values.device).bool()
    kl = ppo.kl_k1(batch.logp_old, batch.logp_ref)
    positions = ppo.last_valid_index(mask) if batch.score_positions is None else batch.score_positions.to(mask.device)
    scores = ppo.place_scores(batch.scores.to(mask.device), positions, mask.shape)
    rewards = ppo.token_rewards(kl, mask, kl_coef, scores)
    batch.advantages, batch.returns = ppo.gae(rewards, batch.values, mask, gamma, lam)
    return torch.where(mask, kl, 0.0)


def category_shares(categories: list[str]) -> dict[str, float]:
    """Share of each call category (all of CALL_CATEGORIES, zeros included) among `categories`."""
    counts = Counter(categories)
    return {c: counts[c] / max(len(categories), 1) for c in CALL_CATEGORIES}
