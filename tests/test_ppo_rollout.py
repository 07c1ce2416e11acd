"""Prompts, packing, scoring forwards and the critic of tl/ppo.py on a tiny random model, and the
--multi_turn rollouts: the trained sequence, masked feedback tokens, one score per output with calls
(its worst call's), GAE across turns, and a training step in the real sandbox."""

import copy
import json

import ppo_tiny
import pytest
import sft_tiny
import torch

from tasks.trajectories import validate_record
from tl import ppo
from tl.calls import render_prompt
from tl.episode import Task
from tl.generate import Generation
from tl.hf import load_hf
from tl.ppo import (
    Critic,
    compute_advantages,
    pack,
    prompts_from_trajectories,
    response_logprobs,
    response_values,
    rollout,
    score,
)
from tl.sandbox import Result

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    setup = ppo_tiny.write_setup(tmp_path_factory.mktemp("ppo_tiny"))
    setup["actor"] = load_hf(setup["model"])
    return setup


def validated(records):
    return [validate_record(r) for r in records]


def test_prompts_keep_only_calls_with_all_right_feedback():
    prompts, counts = prompts_from_trajectories(validated(sft_tiny.records(9)))
    # 9 good calls + 3 erroneous ones (records 2, 5, 8), one per feedback category of sft_tiny.ERRORS
    assert counts["calls"] == 12 and counts["kept"] == 9
    assert (
        counts["dropped_param_hallucination"],
        counts["dropped_param_missing"],
        counts["dropped_tool_hallucination"],
    ) == (1, 1, 1)
    p2 = next(p for p in prompts if p.id == "t2@3")
    # the erroneous call and its feedback stay in the history of the corrected call
    assert [m["role"] for m in p2.messages] == ["user", "assistant", "tool"]
    assert [(g.name, g.arguments) for g in p2.gold] == [("get_weather", {"city": "Oslo"})]
    assert p2.mode == "strict"


def test_pack_left_pads_prompts_and_right_pads_responses():
    ids, attn, resp = pack([[1, 5, 6], [1, 7]], [[8, 2], [9, 9, 2]], pad_id=0)
    assert ids.tolist() == [[1, 5, 6, 8, 2, 0], [0, 1, 7, 9, 9, 2]]
    assert attn.tolist() == [[1, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1]]
    assert resp.tolist() == [[1, 1, 0], [1, 1, 1]]


def test_logprobs_invariant_to_left_padding_and_batch_composition(tiny):
    model = tiny["actor"]
    torch.manual_seed(0)
    V = model.args.vocab_size
    prompts = [torch.randint(3, V, (n,)).tolist() for n in (5, 11, 8)]
    responses = [torch.randint(3, V, (n,)).tolist() for n in (4, 2, 6)]
    ids, attn, resp = pack(prompts, responses, pad_id=0)
    with torch.no_grad():
        batched, _ = response_logprobs(model, ids, attn, resp.shape[1], temperature=0.8)
        for b in range(3):
            alone_ids, alone_attn, _ = pack([prompts[b]], [responses[b]], pad_id=0)
            alone, _ = response_logprobs(model, alone_ids, alone_attn, len(responses[b]), temperature=0.8)
            torch.testing.assert_close(batched[b, : len(responses[b])], alone[0], atol=1e-5, rtol=1e-5)


def test_policy_equal_to_reference_gives_zero_kl_and_ratio_one(tiny):
    actor = tiny["actor"]
    reference = copy.deepcopy(actor).requires_grad_(False)
    critic = Critic(copy.deepcopy(actor))
    prompts, _ = prompts_from_trajectories(validated(sft_tiny.records(4)))
    batch = rollout(actor, tiny["tokenizer"], prompts, max_new_tokens=6, temperature=1.0, seed=0)
    score(batch, actor, reference, critic, temperature=1.0)
    kl = compute_advantages(batch, kl_coef=0.3)
    mask = batch.response_mask.bool()
    assert (kl == 0).all()
    # the score is the only reward, at the last valid token; V = 0 (zero head) and gamma = lambda = 1
    # would make A_t = score; with lambda = 0.95 it decays toward the start
    last = ppo.last_valid_index(mask)
    torch.testing.assert_close(batch.advantages[torch.arange(4), last], batch.scores)
    # first PPO forward, in train mode, before any update: ratio 1, clipfrac 0, approx-KL 0
    logp, _ = response_logprobs(actor.train(), batch.input_ids, batch.attention_mask, batch.response_len, 1.0)
    _, stats = ppo.policy_loss(logp, batch.logp_old, batch.advantages, mask)
    assert stats["clipped"].item() == 0
    assert stats["approx_kl"].item() == pytest.approx(0.0, abs=1e-6)
    assert stats["ratio"].item() == pytest.approx(mask.sum().item(), abs=1e-4)


def test_rollout_cuts_after_eos_and_pads_with_non_eos(tiny):
    tok = tiny["tokenizer"]
    prompts, _ = prompts_from_trajectories(validated(sft_tiny.records(4)))
    batch = rollout(tiny["actor"], tok, prompts, max_new_tokens=12, temperature=1.0, seed=3)
    R = batch.response_len
    responses = batch.input_ids[:, -R:]
    for b in range(len(prompts)):
        valid = responses[b][batch.response_mask[b].bool()].tolist()
        assert tok.eos_id not in valid[:-1]  # at most one EOS, and only as the last valid token
        assert (responses[b][~batch.response_mask[b].bool()] == tok.pad_id).all()
    assert tok.pad_id != tok.eos_id
    assert len(batch.categories) == len(prompts) and batch.scores.shape == (len(prompts),)


def test_critic_zero_head_no_lm_head_and_gradients(tiny):
    critic = Critic(copy.deepcopy(tiny["actor"]))
    assert not hasattr(critic.trunk, "lm_head")
    assert not any("lm_head" in k for k in critic.state_dict())
    ids, attn, resp = pack([[1, 5, 6, 7]], [[8, 9, 2]], pad_id=0)
    values = response_values(critic, ids, attn, 3)
    assert values.shape == (1, 3) and (values == 0).all()
    loss, _ = ppo.value_loss(values, values.detach(), torch.ones(1, 3), resp.bool())
    loss.backward()
    assert critic.value_head.bias.grad.abs().item() > 0 and critic.value_head.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- --multi_turn

CALL = ' get_weather_current(city="Paris")'
ANSWER = " It is 18 C."


class FixedWeather:
    """An executor whose every call succeeds with the same weather."""

    def run(self, call):
        return Result(True, '{"temp_c": 18}')


def scripted_generate(monkeypatch, tok, outputs):
    """Replace generation with a script: the k-th call returns outputs[k] for every prompt; returns the
    list it records the prompts of each call in."""
    seen = []

    def fake_generate(model, prompts, **kw):
        seen.append(prompts)
        ids = tok.encode_continuation(outputs[len(seen) - 1]) + [tok.eos_id]
        return Generation([ids] * len(prompts), [tok.decode(ids, continuation=True)] * len(prompts))

    monkeypatch.setattr(ppo, "generate", fake_generate)
    return seen


def test_category_reward_is_the_paper_table():
    table = {
        "correct": 1.0,
        "param_hallucination": -0.8,
        "param_missing": -0.5,
        "param_redundant": -0.5,
        "tool_hallucination": -2.0,
        "unparsable": -2.0,
        "content_error": -0.25,
    }
    assert [ppo.category_reward(c) for c in table] == list(table.values())


def test_tasks_from_trajectories_take_the_first_query():
    tasks = ppo.tasks_from_trajectories(sft_tiny.records(3))
    assert len(tasks) == 3 and tasks[0].query == sft_tiny.records(3)[0]["messages"][0]["content"]
    assert tasks[0].tools == sft_tiny.TOOLS


def test_episode_sequence_masks_feedback_and_scores_each_call(tiny, monkeypatch):
    tok = tiny["tokenizer"]
    seen = scripted_generate(monkeypatch, tok, [CALL, ANSWER])  # a correct call, then an answer
    task = Task("t", "train", sft_tiny.TOOLS, "Weather in Paris?")
    batch = ppo.episode_rollout(
        tiny["actor"], tok, [task], FixedWeather(), max_turns=4, max_new_tokens=16, max_len=4096
    )
    assert len(seen) == 2  # the answer ended the episode
    # the second turn was generated from exactly the sequence PPO trains on, which is also what the
    # renderer gives for the conversation (the call was written canonically)
    messages = [
        {"role": "user", "content": task.query},
        {"role": "assistant", "tool_call": {"name": "get_weather_current", "arguments": {"city": "Paris"}}},
        {"role": "tool", "content": '{"temp_c": 18}'},
    ]
    assert seen[1][0] == tok.encode_chat(render_prompt(sft_tiny.TOOLS, messages))
    response = batch.input_ids[0, -batch.response_len :].tolist()
    mask = batch.response_mask[0].tolist()
    # the response: the call and its EOS, the feedback (observation), the answer and its EOS
    n_call = len(tok.encode_continuation(CALL)) + 1
    n_answer = len(tok.encode_continuation(ANSWER)) + 1
    n_obs = len(response) - n_call - n_answer
    assert n_obs > 0
    assert response[:n_call] == seen[1][0][-n_call - n_obs :][:n_call]  # the call, as the second turn saw it
    assert mask == [1] * n_call + [0] * n_obs + [1] * n_answer
    assert "Output:" in tok.decode(response[n_call : n_call + n_obs], continuation=True)
    # one score, +1 (correct), at the call's EOS; the answer earns none
    assert batch.score_positions[0].tolist() == [n_call - 1]
    assert batch.scores[0].tolist() == [1.0]
    assert batch.categories == ["correct"] and batch.texts == ["It is 18 C."]

    # scoring on a real model: no KL, advantage or return at feedback tokens; the advantage flows
    # across them from the answer back to the call (GAE skips the hole)
    actor = tiny["actor"]
    ppo.score(batch, actor, copy.deepcopy(actor), ppo.Critic(copy.deepcopy(actor)), temperature=1.0)
    batch.logp_ref = batch.logp_old + 0.1  # pretend the actor drifted: KL -0.1 on every token
    kl = ppo.compute_advantages(batch, kl_coef=0.5, gamma=1.0, lam=1.0)
    obs = torch.tensor(mask) == 0
    assert (kl[0, obs] == 0).all()
    assert (batch.advantages[0, obs] == 0).all()
    assert (batch.returns[0, obs] == 0).all()
    # V = 0, gamma = lambda = 1: A_t = reward-to-go over the model's own tokens only
    rewards = torch.where(~obs, torch.full_like(kl[0], 0.05), 0.0)
    rewards[n_call - 1] += 1.0
    torch.testing.assert_close(batch.advantages[0], rewards.flip(0).cumsum(0).flip(0) * (~obs))


@pytest.mark.parametrize(
    "output, score",
    [
        (' [get_weather_current(city="Paris"), get_weather_current(city="Paris")]', 1.0),  # not +2
        (' [get_weather_current(city="Paris"), made_up(x=1)]', -2.0),  # the worst call
    ],
)
def test_one_score_per_output(tiny, monkeypatch, output, score):
    tok = tiny["tokenizer"]
    scripted_generate(monkeypatch, tok, [output])
    batch = ppo.episode_rollout(
        tiny["actor"],
        tok,
        [Task("t", "train", sft_tiny.TOOLS, "Weather in Paris?")],
        FixedWeather(),
        max_turns=1,
        max_new_tokens=48,
        max_len=4096,
    )
    n = len(tok.encode_continuation(output)) + 1  # the output and its EOS
    assert batch.score_positions[0].tolist() == [n - 1]
    assert batch.scores[0].tolist() == [score]


def test_multi_turn_training_runs_in_the_sandbox(tiny, tmp_path, monkeypatch):
    """--multi_turn plays episodes whose calls run in the real Sandbox, and its feedback reaches
    the trained sequence: the actor's outputs are scripted (a random model writes no call), the
    Sandbox is the real one, recorded."""
    import train_ppo
    from tl.sandbox import Sandbox

    executed = []

    class RecordedSandbox(Sandbox):
        def run(self, call):
            result = super().run(call)
            executed.append((call, result))
            return result

    monkeypatch.setattr(train_ppo, "Sandbox", RecordedSandbox)
    rollouts = []
    real_score = ppo.score

    def recorded_score(batch, *args, **kwargs):
        rollouts.append(batch)
        return real_score(batch, *args, **kwargs)

    monkeypatch.setattr(ppo, "score", recorded_score)
    tok = tiny["tokenizer"]
    scripted_generate(monkeypatch, tok, [CALL, ANSWER] * 4)
    train_ppo.main(
        [
            "--sft",
            tiny["model"],
            "--data",
            tiny["data"],
            "--out",
            str(tmp_path),
            "--multi_turn",
            "--max_turns",
            "2",
            "--batch_size",
            "2",
            "--micro_batch",
            "2",
            "--max_steps",
            "1",
            "--max_new_tokens",
            "12",
            "--temperature",
            "1.0",
            "--no-bf16",
        ]
    )
    # each episode's call ran in the sandbox's toolbox (the real get_weather_current of tasks.toolbox)
    assert len(executed) == 2 and all(call.name == "get_weather_current" for call, _ in executed)
    assert all(result.ok and '"city": "Paris"' in result.output for _, result in executed)
    [batch] = rollouts
    trained_text = tok.decode(batch.input_ids[0].tolist())
    assert executed[0][1].feedback in trained_text  # the sandbox's own words are in the sequence
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["step"] == 1
