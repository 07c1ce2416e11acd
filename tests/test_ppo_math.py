"""The pure PPO functions of tl/ppo.py, each against a hand computation or a naive loop."""

import math

import pytest
import torch

from tl import ppo


def _mask(lengths, width):
    """A [len(lengths), width] bool mask, each row true over its first `length` positions."""
    return torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]


# ----------------------------------------------------------------------------- log-probs


def test_shift_to_response_alignment_and_temperature():
    torch.manual_seed(0)
    B = 2  # batch
    P = 3  # prompt length
    R = 4  # response length
    V = 7  # vocabulary
    ids = torch.randint(V, (B, P + R))
    logits = torch.randn(B, P + R, V)
    T = 0.7
    got = ppo.token_logprobs(ppo.shift_to_response(logits, P), ids[:, P:], temperature=T)
    for b in range(B):
        for i in range(R):  # response token P+i is predicted by position P+i-1
            want = torch.log_softmax(logits[b, P + i - 1] / T, -1)[ids[b, P + i]]
            assert got[b, i].item() == pytest.approx(want.item(), abs=1e-6)
    with pytest.raises(ValueError, match="prompt_len"):
        ppo.shift_to_response(logits, 0)


def test_logprobs_are_fp32_from_bf16_logits():
    logits = torch.randn(1, 3, 11).bfloat16()
    out = ppo.token_logprobs(logits, torch.tensor([[1, 2, 3]]))
    assert out.dtype == torch.float32


def test_entropy_matches_definition():
    torch.manual_seed(1)
    logits = torch.randn(3, 5, 9)
    p = torch.softmax(logits / 2.0, -1)
    want = -(p * p.log()).sum(-1)
    torch.testing.assert_close(ppo.token_entropy(logits, temperature=2.0), want, atol=1e-5, rtol=1e-5)
    uniform = ppo.token_entropy(torch.zeros(1, 1, 9))
    assert uniform.item() == pytest.approx(math.log(9), abs=1e-6)


# ----------------------------------------------------------------------------- rewards


def test_exactly_one_score_per_row_at_last_valid_token():
    mask = _mask([3, 5, 1], 5)
    assert ppo.last_valid_index(mask).tolist() == [2, 4, 0]
    score = torch.tensor([1.0, -1.5, -0.25])
    dense = ppo.place_scores(score, ppo.last_valid_index(mask), mask.shape)
    assert (dense != 0).sum(1).tolist() == [1, 1, 1]
    assert dense[0, 2] == 1.0 and dense[1, 4] == -1.5 and dense[2, 0] == -0.25


def test_token_rewards_sum_to_score_minus_beta_kl():
    torch.manual_seed(2)
    mask = _mask([4, 2], 6)
    logp = torch.randn(2, 6)
    logp_ref = torch.randn(2, 6)
    kl = ppo.kl_k1(logp, logp_ref)
    score = torch.tensor([1.0, -2.0])
    beta = 0.3
    dense_scores = ppo.place_scores(score, ppo.last_valid_index(mask), mask.shape)
    rewards = ppo.token_rewards(kl, mask, beta, dense_scores)
    want = score - beta * (kl * mask).sum(1)
    torch.testing.assert_close(rewards.sum(1), want)
    assert (rewards[~mask] == 0).all()
    # the score sits on the last valid token, not one past it
    assert rewards[0, 3].item() == pytest.approx(1.0 - beta * kl[0, 3].item(), abs=1e-6)


def test_multi_turn_scores_at_each_call_end():
    scores = torch.tensor([[1.0, -0.5], [-2.0, 0.0]])
    positions = torch.tensor([[2, 6], [3, -1]])  # -1: the second row made one call only
    dense = ppo.place_scores(scores, positions, torch.Size([2, 8]))
    assert dense[0, 2] == 1.0 and dense[0, 6] == -0.5 and dense[1, 3] == -2.0
    assert (dense != 0).sum().item() == 3


# ----------------------------------------------------------------------------- GAE


def _gae_brute_force(rewards, values, mask, gamma, lam):
    """A_t = sum_l (gamma lam)^l delta_{t+l} over the valid tokens only, O(T^2)."""
    adv = torch.zeros_like(rewards)
    for b in range(rewards.shape[0]):
        idx = mask[b].nonzero().flatten().tolist()  # the valid positions, holes skipped
        r = rewards[b, idx]
        v = values[b, idx]
        v_next = torch.cat([v[1:], torch.zeros(1)])
        delta = r + gamma * v_next - v
        for i, t in enumerate(idx):
            adv[b, t] = sum((gamma * lam) ** lag * delta[i + lag] for lag in range(len(idx) - i))
    return adv


def test_gae_equals_brute_force_with_holes_and_padding():
    torch.manual_seed(3)
    mask = _mask([7, 4, 9], 9)
    mask[0, 2:4] = False  # tool-output tokens inside an episode: GAE must skip them
    rewards = torch.randn(3, 9)
    values = torch.randn(3, 9)
    adv, ret = ppo.gae(rewards, values, mask, gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv, _gae_brute_force(rewards, values, mask, 0.9, 0.8), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ret, (adv + values) * mask)
    # garbage at masked positions changes nothing
    rewards2 = rewards.clone()
    values2 = values.clone()
    rewards2[~mask] = 1e6
    values2[~mask] = -1e6
    torch.testing.assert_close(ppo.gae(rewards2, values2, mask, 0.9, 0.8)[0], adv)


def test_gae_special_cases():
    torch.manual_seed(4)
    mask = _mask([5, 3], 5)
    rewards = torch.randn(2, 5) * mask
    values = torch.randn(2, 5) * mask
    # lambda = 0: A_t = delta_t = r_t + V_{t+1} - V_t, with V = 0 after the last valid token
    adv0, _ = ppo.gae(rewards, values, mask, gamma=1.0, lam=0.0)
    next_values = torch.cat([values[:, 1:], torch.zeros(2, 1)], 1)
    next_valid = torch.cat([mask[:, 1:], torch.zeros(2, 1, dtype=torch.bool)], 1)
    v_next = next_values * next_valid
    torch.testing.assert_close(adv0, (rewards + v_next - values) * mask)
    # lambda = 1, V = 0: A_t = reward-to-go
    adv1, ret1 = ppo.gae(rewards, torch.zeros(2, 5), mask, gamma=1.0, lam=1.0)
    to_go = rewards.flip(1).cumsum(1).flip(1) * mask
    torch.testing.assert_close(adv1, to_go)
    torch.testing.assert_close(ret1, to_go)


def test_ratio_one_before_update():
    torch.manual_seed(6)
    mask = _mask([4, 2], 4)
    logp = torch.randn(2, 4)
    adv = torch.randn(2, 4)
    loss, stats = ppo.policy_loss(logp, logp.clone(), adv, mask)
    assert stats["clipped"].item() == 0 and stats["approx_kl"].item() == 0
    assert stats["ratio"].item() == pytest.approx(mask.sum().item())
    assert loss.item() == pytest.approx(-(adv[mask]).mean().item(), abs=1e-6)


def test_clipped_branches_give_zero_gradient():
    eps = 0.2
    logp_old = torch.zeros(1, 4)
    # ratios e^0.5 > 1.2 with A > 0 and e^-0.5 < 0.8 with A < 0: clipped; the other two are not
    logp = torch.tensor([[0.5, -0.5, 0.5, -0.5]], requires_grad=True)
    adv = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    loss, stats = ppo.policy_loss(logp, logp_old, adv, torch.ones(1, 4, dtype=torch.bool), clip_eps=eps)
    loss.backward()
    assert logp.grad[0, 0] == 0 and logp.grad[0, 1] == 0
    assert logp.grad[0, 2] != 0 and logp.grad[0, 3] != 0
    assert stats["clipped"].item() == 2
    # hand-computed: max(-A r, -A clip(r)) per token, mean over 4
    r = math.exp(0.5)
    want = (-1.2 + 0.8 + r - 1 / r) / 4
    assert loss.item() == pytest.approx(want, abs=1e-6)


def test_value_loss_hand_computed_and_clip_gradient():
    values_old = torch.tensor([[0.0, 0.0]])
    values = torch.tensor([[0.5, 0.1]], requires_grad=True)
    returns = torch.tensor([[1.0, -1.0]])
    loss, stats = ppo.value_loss(
        values, values_old, returns, torch.ones(1, 2, dtype=torch.bool), clip_eps=0.2
    )
    # token 0: max((0.5-1)^2, (0.2-1)^2) = 0.64 (clipped branch, no grad); token 1: (0.1+1)^2 = 1.21
    assert loss.item() == pytest.approx(0.5 * (0.64 + 1.21) / 2, abs=1e-6)
    assert stats["clipped"].item() == 1
    loss.backward()
    assert values.grad[0, 0] == 0 and values.grad[0, 1].item() == pytest.approx(0.5 * 2 * 1.1 / 2)


@pytest.mark.parametrize("which", ["policy", "value"])
def test_masked_positions_do_not_affect_loss_or_grads(which):
    torch.manual_seed(7)
    mask = _mask([5, 2, 4], 6)
    mask[2, 1] = False  # a hole, as for tool-output tokens

    def run(fill):
        """The loss and its gradient, with `fill` (if any) at every masked position of the inputs."""
        # the loss's inputs: new log-probs or values (differentiated), old ones, advantages or returns
        new = torch.randn(3, 6, generator=torch.Generator().manual_seed(0), requires_grad=False)
        old = torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
        target = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
        if fill is not None:
            new, old, target = (torch.where(mask, x, fill) for x in (new, old, target))
        new.requires_grad_(True)
        fn = ppo.policy_loss if which == "policy" else ppo.value_loss
        loss, _ = fn(new, old, target, mask)
        loss.backward()
        return loss.detach(), new.grad

    ref_loss, ref_grad = run(None)
    for fill in (1e4, -1e4, float("nan"), float("inf")):
        loss, grad = run(fill)
        torch.testing.assert_close(loss, ref_loss)
        torch.testing.assert_close(grad[mask], ref_grad[mask])
        assert (grad[~mask] == 0).all()


def test_global_token_normaliser_makes_split_invariant():
    """Summing micro-batch losses, each divided by the global token count, equals the full batch."""
    torch.manual_seed(8)
    mask = _mask([6, 1, 3, 5], 6)
    logp = torch.randn(4, 6)
    logp_old = torch.randn(4, 6) * 0.1
    adv = torch.randn(4, 6)
    full, _ = ppo.policy_loss(logp, logp_old, adv, mask)
    n = mask.sum()

    def half(i, *normaliser):
        """The loss of rows i and i + 1 (a micro-batch)."""
        rows = slice(i, i + 2)
        return ppo.policy_loss(logp[rows], logp_old[rows], adv[rows], mask[rows], *normaliser)[0]

    parts = sum(half(i, n) for i in (0, 2))
    torch.testing.assert_close(parts, full)
    # each micro-batch normalised by its own token count: not the full batch's loss
    mean_of_means = sum(half(i) for i in (0, 2)) / 2
    assert not torch.allclose(mean_of_means, full)


# ----------------------------------------------------------------------------- KL controller
