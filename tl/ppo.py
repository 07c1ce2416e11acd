"""The PPO math of TL-Training's IRM stage (paper Sec. 3.3), as pure tensor functions.

    max_M  E_D [ sum_s R(t_s) - beta * KL(M || M_sft) ]                      (paper Sec. 3.3)

Layout shared by every function here: a rollout batch is `[B, P + R]` token ids, the prompt
left-padded to P, the response right-padded to R. Everything per token is `[B, R]` over the
*response* positions, with a float/bool `mask` that is 1 on response tokens that count (up to and
including EOS) and 0 on padding (and, in multi-turn episodes, on tool-output tokens).

Nothing here touches a model, a process group or an optimizer, so each function is tested on its
own against a naive loop (see tests/test_ppo_math.py). Losses return a *sum* over valid tokens
divided by a caller-given token count `n_tokens`: passing the global count over all micro-batches
and ranks makes the loss a true token mean, independent of how the batch is split (a mean of
per-micro-batch means is not).

Defaults follow the paper's code (a DeepSpeed-Chat fork, see ../shared/docs/PAPER.md): GAE with
gamma = 1, lambda = 0.95, policy and value clip 0.2, score clipped to +-5, no advantage whitening.
"""
from __future__ import annotations

import math

import torch


# ----------------------------------------------------------------------------- log-probs

def shift_to_response(x: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """The positions that predict the response tokens: `x[:, P-1:-1]` of a `[B, P+R, ...]` output.

    Position i predicts token i+1, so the response (tokens P..P+R-1) is scored by positions
    P-1..P+R-2; the output after the last token predicts nothing we sampled. Used for logits and,
    as in the paper's code, for the critic's values (V_t is the value of the state before token t).
    """
    if not 0 < prompt_len < x.shape[1]:
        raise ValueError(f"prompt_len must be in 1..{x.shape[1] - 1} for an output of shape "
                         f"{tuple(x.shape)}, got {prompt_len}")
    return x[:, prompt_len - 1 : -1]


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(token | context) under softmax(logits / T), computed in fp32.

    `logits` `[B, R, V]` must already be aligned with `tokens` `[B, R]` (see `shift_to_response`).
    Scoring must use the sampling temperature, or the PPO ratio and the KL are of a different
    distribution than the one the rollout came from.
    """
    logits = logits.float() / temperature
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy H = logsumexp(z) - sum softmax(z) z of each position's distribution, z = logits / T, fp32."""
    z = logits.float() / temperature
    return torch.logsumexp(z, dim=-1) - (torch.softmax(z, dim=-1) * z).sum(-1)


# ----------------------------------------------------------------------------- rewards

def kl_k1(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate k1 = log pi(t) - log pi_ref(t) (Schulman's k1; what the paper's code uses).

    Unbiased for KL(pi || pi_ref) when tokens are sampled from pi; can be negative per token.
    """
    return logp - logp_ref


def last_valid_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last valid response token (EOS, or the last token if truncated).

    A row with no valid token (an empty response can only happen if generation produced nothing)
    gets index 0, so that its score still lands somewhere; callers keep at least one token.
    """
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.zeros_like(positions)).amax(dim=1)


def place_scores(scores: torch.Tensor, positions: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A dense `[B, R]` tensor holding `scores[b, k]` at `positions[b, k]` and 0 elsewhere.

    Single-turn: one score per row at `last_valid_index(mask)`. Multi-turn: one score per call at
    that call's last token. Positions < 0 mark absent scores.
    """
    if scores.dim() == 1:
        scores, positions = scores[:, None], positions[:, None]
    dense = torch.zeros(shape, dtype=torch.float32, device=scores.device)
    present = positions >= 0
    return dense.scatter_add_(1, positions.clamp(min=0), torch.where(present, scores.float(), 0.0))


def token_rewards(kl: torch.Tensor, mask: torch.Tensor, kl_coef: float,
                  score_per_token: torch.Tensor) -> torch.Tensor:
    """r_t = -beta * kl_t + score_t on valid tokens (paper Sec. 3.3 objective, per token).

    `score_per_token` comes from `place_scores`: the task score R(t) sits only at the last valid
    token of the call it rewards, so sum_t r_t = score - beta * sum_t kl_t over each row.
    """
    return torch.where(mask.bool(), -kl_coef * kl + score_per_token, 0.0)


# ----------------------------------------------------------------------------- advantages

@torch.no_grad()
def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
        gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), returns = advantages + values.

        delta_t = r_t + gamma V_{t+1} - V_t,   A_t = delta_t + gamma lam A_{t+1},   V after the end = 0

    Masked positions are *skipped*: t+1 means the next valid token, so tool-output tokens inside a
    multi-turn episode neither receive advantage nor break the chain, and trailing padding behaves
    as the end of the episode. Outputs are 0 at masked positions.
    """
    mask = mask.bool()
    advantages = torch.zeros_like(values, dtype=torch.float32)
    next_value = torch.zeros(values.shape[0], dtype=torch.float32, device=values.device)
    next_adv = torch.zeros_like(next_value)
    for t in reversed(range(values.shape[1])):
        m, v = mask[:, t], values[:, t].float()
        delta = rewards[:, t].float() + gamma * next_value - v
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = torch.where(m, adv, 0.0)
        next_value = torch.where(m, v, next_value)
        next_adv = torch.where(m, adv, next_adv)
    returns = torch.where(mask, advantages + values.float(), 0.0)
    return advantages, returns


def masked_moments(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`[sum, sum of squares, count]` of x over valid tokens: all-reduce it to whiten across ranks."""
    mask = mask.bool()
    return torch.stack([_masked_sum(x, mask), _masked_sum(x * x, mask), mask.sum()]).double()


def whiten(x: torch.Tensor, mask: torch.Tensor, moments: torch.Tensor | None = None,
           shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over valid tokens (TRL / OpenRLHF's advantage whitening), 0 at masked ones.

    `moments` are `masked_moments` summed over all ranks for a global whitening; by default the
    local ones. The paper's code does not whiten, so train_ppo.py leaves it off by default.
    """
    s, s2, n = (masked_moments(x, mask) if moments is None else moments).tolist()
    mean = s / max(n, 1.0)
    var = max(s2 / max(n, 1.0) - mean * mean, 0.0) * n / max(n - 1.0, 1.0)  # unbiased, like TRL
    out = (x - mean) / math.sqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(mask.bool(), out, 0.0)


# ----------------------------------------------------------------------------- losses

def policy_loss(logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, n_tokens: float | None = None,
                clip_eps: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate (Schulman et al. 2017, PPO-clip), as a token sum / n_tokens.

        L = sum_t max(-A_t r_t, -A_t clip(r_t, 1 - eps, 1 + eps)) / n_tokens,   r_t = pi / pi_old

    Where the clipped branch is the max (A > 0 and r > 1 + eps, or A < 0 and r < 1 - eps) the
    gradient is exactly 0. Stats are token *sums* (divide by the global count after all-reducing):
    `clipped` counts tokens on the clipped branch, `approx_kl` sums k3 = (r - 1) - log r (>= 0, 0 iff
    r = 1), `ratio` sums r.
    """
    mask = mask.bool()
    n = mask.sum().clamp(min=1) if n_tokens is None else n_tokens
    # `where`, not `* mask`: garbage at masked positions (inf, nan) must not reach exp or the sum.
    log_ratio = torch.where(mask, logp - logp_old, 0.0)
    advantages = torch.where(mask, advantages, 0.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = _masked_sum(torch.maximum(unclipped, clipped), mask) / n
    with torch.no_grad():
        stats = {
            "clipped": _masked_sum((clipped > unclipped).float(), mask),
            "approx_kl": _masked_sum((ratio - 1.0) - log_ratio, mask),
            "ratio": _masked_sum(ratio, mask),
        }
    return loss, stats


def value_loss(values: torch.Tensor, values_old: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, n_tokens: float | None = None,
               clip_eps: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss: 0.5 * sum_t max((V - R)^2, (clip(V, V_old +- eps) - R)^2) / n_tokens.

    Stats (token sums): `clipped` counts tokens where the clipped error is the larger one.
    """
    mask = mask.bool()
    n = mask.sum().clamp(min=1) if n_tokens is None else n_tokens
    values, values_old, returns = (torch.where(mask, x, 0.0) for x in (values, values_old, returns))
    values_clipped = values_old + torch.clamp(values - values_old, -clip_eps, clip_eps)
    err = (values - returns) ** 2
    err_clipped = (values_clipped - returns) ** 2
    loss = 0.5 * _masked_sum(torch.maximum(err, err_clipped), mask) / n
    with torch.no_grad():
        stats = {"clipped": _masked_sum((err_clipped > err).float(), mask)}
    return loss, stats


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over valid tokens (0 when there are none); for logging."""
    return _masked_sum(x, mask.bool()) / mask.bool().sum().clamp(min=1)


def _masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, x, 0.0).sum()


# ----------------------------------------------------------------------------- KL coefficient

class FixedKLController:
    """A constant beta (the paper's code: hard-coded 0.4; its run script passes 0.3)."""

    def __init__(self, kl_coef: float):
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_samples: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. 2019 (Sec. 2.2): steer beta so the measured KL approaches `target`.

        e = clip(KL / target - 1, -0.2, 0.2),   beta <- beta * (1 + e * n_samples / horizon)
    """

    def __init__(self, kl_coef: float, target: float, horizon: float = 10000):
        super().__init__(kl_coef)
        self.target, self.horizon = float(target), float(horizon)

    def update(self, current_kl: float, n_samples: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_samples / self.horizon
