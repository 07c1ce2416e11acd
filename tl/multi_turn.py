"""Online multi-turn PPO rollouts (beyond the paper; `train_ppo.py --multi_turn`).

Each task (tools + a query) is played as an episode with `tl.episode.Episode` in the sandbox:
generate, parse, execute, append the `Output:` feedback, up to `max_turns` outputs. The sequence
PPO trains on is exactly the token sequence the model generated from:

    prompt_0 + out_0 + obs_0 + out_1 + obs_1 + ... + out_last

where out_t are the sampled tokens (cut after EOS) and obs_t is the rendered feedback
`\\nOutput: ...\\nAssistant:` encoded as a continuation (what follows EOS in `encode_chat`).
Generating from this sequence, rather than from a re-rendered prompt, keeps the context of every
turn identical between rollout and update even when the model writes a call in a non-canonical way.

- Response mask: 1 on the model's tokens, 0 on obs tokens, so feedback tokens get no policy or
  value loss and no KL; `tl.ppo.gae` skips them (advantages flow from one turn to the next).
- Rewards: each output's R(t) (paper Sec. 3.3) at its last token: the worst of its calls' (so,
  as in tl.classify, several calls in one output never earn more than one), each from
  the call category the episode runner gives it (its feedback: all right -> correct, a missing or
  hallucinated parameter or tool -> that penalty, other failures -> content error; unreadable
  output -> unparsable). A final answer earns no score of its own.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from tl.classify import (PARAM_HALLUCINATION, PARAM_MISSING, PARAM_REDUNDANT, Classification, call_reward)
from tl.episode import Episode
from tl.generate import generate
from tl.calls import EOS_MARK
from tl.rollout import Rollout, pack


def category_reward(category: str) -> float:
    """R(t) of a call known only by its category (no gold call: an online episode)."""
    flags = {"hallucinated": category == PARAM_HALLUCINATION, "redundant": category == PARAM_REDUNDANT,
             "missing": category == PARAM_MISSING}
    return call_reward(Classification(category, flags))


def tasks_from_trajectories(records: list[dict]) -> list[dict]:
    """One task per trajectory: its tools and its first user message as the query."""
    return [{"id": r.get("id", str(i)), "tools": r["tools"], "query": r["messages"][0]["content"]}
            for i, r in enumerate(records) if r["messages"] and r["messages"][0].get("role") == "user"]


def observation_text(episode: Episode) -> str:
    """What the rendered prompt adds after the last assistant turn's EOS: `\\nOutput: ...\\nAssistant:`."""
    prompt = episode.prompt()
    return prompt[prompt.rindex(EOS_MARK) + len(EOS_MARK):]


def _any_rank(flag: bool) -> bool:
    """True if `flag` holds on any rank: every rank must call `generate` equally often under FSDP."""
    t = torch.tensor(int(flag))
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t)


def episode_rollout(actor, tokenizer, tasks: list[dict], executor, *, max_turns: int, max_new_tokens: int,
                    max_len: int, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None) -> Rollout:
    """Play one episode per task and pack them as a `Rollout` with obs tokens masked and one score
    per output that made calls (`score_positions`). An episode also stops when its sequence would exceed `max_len`."""
    episodes = [Episode(t["tools"], t["query"], executor, max_turns=max_turns) for t in tasks]
    prompts = [tokenizer.encode_chat(ep.prompt()) for ep in episodes]
    tokens = [[] for _ in tasks]        # everything after the first prompt
    trained = [[] for _ in tasks]       # 1 on the model's tokens, 0 on feedback
    calls = [[] for _ in tasks]         # (position of the output's last token, category) per call
    for turn in range(max_turns):
        active = [i for i, ep in enumerate(episodes)
                  if not ep.done and len(prompts[i]) + len(tokens[i]) + max_new_tokens <= max_len]
        if not _any_rank(bool(active)):
            break
        inputs = [prompts[i] + tokens[i] for i in active] or [[tokenizer.bos_id]]  # a stand-in keeps ranks in step
        gen = generate(actor, inputs, max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id,
                       temperature=temperature, top_p=top_p, seed=None if seed is None else seed + turn,
                       tokenizer=tokenizer)
        for i, ids, text in zip(active, gen.tokens, gen.texts):
            step = episodes[i].step(text)
            tokens[i] += ids
            trained[i] += [1] * len(ids)
            if step.calls:  # one score per output, its worst call's, as for single-turn extra calls: no free +1 per call
                calls[i].append((len(tokens[i]) - 1, min((c.category for c in step.calls), key=category_reward)))
            if not episodes[i].done:
                obs = tokenizer.encode_continuation(observation_text(episodes[i]))
                tokens[i] += obs
                trained[i] += [0] * len(obs)
    input_ids, attention_mask, _ = pack(prompts, tokens, tokenizer.pad_id)
    R = input_ids.shape[1] - max(len(p) for p in prompts)
    response_mask = torch.zeros(len(tasks), R, dtype=torch.long)
    K = max(1, max(len(c) for c in calls))
    positions = torch.full((len(tasks), K), -1, dtype=torch.long)
    scores = torch.zeros(len(tasks), K)
    for b in range(len(tasks)):
        response_mask[b, : len(trained[b])] = torch.tensor(trained[b], dtype=torch.long)
        for k, (pos, category) in enumerate(calls[b]):
            positions[b, k], scores[b, k] = pos, category_reward(category)
    return Rollout(input_ids, attention_mask, response_mask, texts=[ep.answer or "" for ep in episodes],
                   scores=scores, categories=[c for per in calls for _, c in per], score_positions=positions)
