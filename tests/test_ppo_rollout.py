"""Prompts, packing, scoring forwards and the critic of tl/ppo.py on a tiny random model."""
import copy

import pytest
import torch

import ppo_tiny
import sft_tiny
from tl import ppo
from tl.model import Transformer
from tl.ppo import (Critic, compute_advantages, pack, prompts_from_trajectories, response_logprobs,
                        response_values, rollout, score)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    setup = ppo_tiny.write_setup(tmp_path_factory.mktemp("ppo_tiny"))
    setup["actor"] = Transformer.from_pretrained(setup["model"])
    return setup


def test_prompts_keep_only_calls_with_all_right_feedback():
    prompts, counts = prompts_from_trajectories(sft_tiny.records(9))
    # 9 good calls + 3 erroneous ones (records 2, 5, 8), one per feedback category of sft_tiny.ERRORS
    assert counts["calls"] == 12 and counts["kept"] == 9
    assert (counts["dropped_param_hallucination"], counts["dropped_param_missing"],
            counts["dropped_tool_hallucination"]) == (1, 1, 1)
    p2 = next(p for p in prompts if p.id == "t2@3")
    # the erroneous call and its feedback stay in the history of the corrected call
    assert [m["role"] for m in p2.messages] == ["user", "assistant", "tool"]
    assert [(g.name, g.arguments) for g in p2.gold] == [("get_weather", {"city": "Oslo"})] and p2.mode == "strict"


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
    prompts, _ = prompts_from_trajectories(sft_tiny.records(4))
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
    prompts, _ = prompts_from_trajectories(sft_tiny.records(4))
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
