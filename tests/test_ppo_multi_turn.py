"""--multi_turn rollouts: the trained sequence, masked feedback tokens, per-call scores, GAE across turns."""
import copy

import pytest
import torch

import ppo_tiny
import sft_tiny
from tl import multi_turn, ppo
from tl.generate import Generation
from tl.model import Transformer
from tl.calls import render_prompt
from tl.rollout import Critic, compute_advantages, score
from tl.sandbox import Result

CALL = ' get_weather_current(city="Paris")'
ANSWER = " It is 18 C."

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    setup = ppo_tiny.write_setup(tmp_path_factory.mktemp("ppo_multi"))
    setup["actor"] = Transformer.from_pretrained(setup["model"])
    return setup


class FixedWeather:
    def run(self, call):
        return Result(True, '{"temp_c": 18}')


def test_category_reward_is_the_paper_table():
    assert multi_turn.category_reward("correct") == 1.0
    assert multi_turn.category_reward("param_hallucination") == -0.8
    assert multi_turn.category_reward("param_missing") == -0.5
    assert multi_turn.category_reward("tool_hallucination") == -2.0
    assert multi_turn.category_reward("unparsable") == -2.0
    assert multi_turn.category_reward("content_error") == -0.25


def test_episode_sequence_masks_feedback_and_scores_each_call(tiny, monkeypatch):
    tok = tiny["tokenizer"]
    scripted = [tok.encode_continuation(CALL) + [tok.eos_id], tok.encode_continuation(ANSWER) + [tok.eos_id]]
    turns = []

    def fake_generate(model, prompts, **kw):  # a scripted policy: a correct call, then an answer
        turns.append(prompts)
        ids = scripted[len(turns) - 1]
        return Generation([ids] * len(prompts), [[0.0] * len(ids)] * len(prompts), ["eos"] * len(prompts),
                          [tok.decode(ids, continuation=True)] * len(prompts))

    monkeypatch.setattr(multi_turn, "generate", fake_generate)
    task = {"tools": sft_tiny.TOOLS, "query": "Weather in Paris?"}
    batch = multi_turn.episode_rollout(tiny["actor"], tok, [task], FixedWeather(), max_turns=4,
                                       max_new_tokens=16, max_len=4096)
    assert len(turns) == 2  # the answer ended the episode
    # the second turn was generated from exactly the sequence PPO trains on, which is also what the
    # renderer gives for the conversation (the call was written canonically)
    messages = [{"role": "user", "content": task["query"]},
                {"role": "assistant", "tool_call": {"name": "get_weather_current", "arguments": {"city": "Paris"}}},
                {"role": "tool", "content": '{"temp_c": 18}'}]
    assert turns[1][0] == tok.encode_chat(render_prompt(sft_tiny.TOOLS, messages))
    response = batch.input_ids[0, -batch.response_len:].tolist()
    mask = batch.response_mask[0].tolist()
    n_call, n_answer = len(scripted[0]), len(scripted[1])
    n_obs = len(response) - n_call - n_answer
    assert n_obs > 0 and response[:n_call] == scripted[0] and response[-n_answer:] == scripted[1]
    assert mask == [1] * n_call + [0] * n_obs + [1] * n_answer
    assert "Output:" in tok.decode(response[n_call:n_call + n_obs], continuation=True)
    # one score, +1 (correct), at the call's EOS
    assert batch.score_positions[0].tolist() == [n_call - 1] and batch.scores[0].tolist() == [1.0]
    assert batch.categories == ["correct"]

    # scoring on a real model: no KL, no advantage and no return at feedback tokens; the advantage
    # flows across them from the answer back to the call (GAE skips the hole)
    actor = tiny["actor"]
    score(batch, actor, copy.deepcopy(actor), Critic(copy.deepcopy(actor)), temperature=1.0)
    batch.logp_ref = batch.logp_old + 0.1  # pretend the actor drifted: KL -0.1 on every token
    kl = compute_advantages(batch, kl_coef=0.5, gamma=1.0, lam=1.0)
    obs = torch.tensor(mask) == 0
    assert (kl[0, obs] == 0).all() and (batch.advantages[0, obs] == 0).all() and (batch.returns[0, obs] == 0).all()
    # V = 0, gamma = lambda = 1: A_t = reward-to-go over the model's own tokens only
    rewards = torch.where(~obs, torch.full_like(kl[0], 0.05), 0.0)
    rewards[n_call - 1] += 1.0
    to_go = rewards.flip(0).cumsum(0).flip(0) * (~obs)
    torch.testing.assert_close(batch.advantages[0], to_go)


def test_multi_turn_training_runs_in_the_sandbox(tiny, tmp_path):
    import train_ppo

    train_ppo.main(["--sft", tiny["model"], "--data", tiny["data"], "--out", str(tmp_path), "--multi_turn",
                    "--max_turns", "2", "--batch_size", "2", "--micro_batch", "2", "--max_steps", "1",
                    "--max_new_tokens", "6", "--temperature", "1.0"])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and (tmp_path / "model" / "config.json").exists()
