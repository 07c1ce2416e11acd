"""train_ppo.py end to end on a tiny "SFT checkpoint": one update, resume, world size and accumulation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import ppo_tiny
import pytest
import torch

import train_ppo
from tl import dist as D
from tl.hf import load_hf
from tl.tokenizer import load_tokenizer

REPO = Path(__file__).resolve().parents[1]
LOSS_KEYS = ("score", "kl", "policy_loss", "value_loss", "response_len", "entropy", "share_no_call")

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return ppo_tiny.write_setup(tmp_path_factory.mktemp("ppo_train"))


def _argv(setup, out, *extra):
    return [
        "--sft",
        setup["model"],
        "--data",
        setup["data"],
        "--out",
        str(out),
        "--batch_size",
        "4",
        "--micro_batch",
        "2",
        "--max_new_tokens",
        "6",
        "--actor_lr",
        "3e-3",
        "--critic_lr",
        "3e-3",
        "--no-bf16",  # fp32, whatever the CPU: the comparisons below are to float32 rounding
        *extra,
    ]


def _metrics(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _assert_same_losses(a, b, rtol=1e-4):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for key in LOSS_KEYS:
            assert ra[key] == pytest.approx(rb[key], rel=rtol, abs=1e-6), (ra["step"], key)


def test_update_moves_actor_and_critic_never_reference_and_warmup_only_critic(setup, tmp_path):
    args = train_ppo.parse_args(_argv(setup, tmp_path, "--temperature", "1.0"))
    args.score_temperature = 1.0
    info = D.init_distributed("cpu")
    tok = load_tokenizer(os.path.join(setup["model"], "tokenizer.model"))
    prompts, _ = train_ppo.load_prompts(args, tok, lambda *a: None)
    actor, reference, critic, opt_actor, opt_critic = train_ppo.build_models(args, info, tok, bf16=False)
    sft = load_hf(setup["model"]).state_dict()
    actor_before = {k: v.clone() for k, v in actor.state_dict().items()}
    head_before = critic.value_head.weight.detach().clone()

    rollouts, _, _ = train_ppo.collect(
        (actor, reference, critic), tok, prompts, [[0, 1], [2, 3]], 0, args, info, False
    )
    stats = train_ppo.ppo_step(rollouts, actor, critic, opt_actor, opt_critic, args, info, bf16=False)

    assert stats["clipfrac"] == 0 and stats["approx_kl"] == pytest.approx(
        0.0, abs=1e-7
    )  # one PPO epoch: ratio 1
    assert all(not p.requires_grad for p in reference.parameters()) and not reference.training
    for k, v in reference.state_dict().items():
        assert torch.equal(v, sft[k]), k
    assert any(not torch.equal(v, actor_before[k]) for k, v in actor.state_dict().items())
    assert not torch.equal(critic.value_head.weight, head_before)

    # critic warm-up: the actor stays put, the critic still learns
    actor_before = {k: v.clone() for k, v in actor.state_dict().items()}
    head_before = critic.value_head.weight.detach().clone()
    rollouts, _, _ = train_ppo.collect(
        (actor, reference, critic), tok, prompts, [[4, 5], [6, 7]], 1, args, info, False
    )
    train_ppo.ppo_step(
        rollouts, actor, critic, opt_actor, opt_critic, args, info, bf16=False, train_actor=False
    )
    assert all(torch.equal(v, actor_before[k]) for k, v in actor.state_dict().items())
    assert not torch.equal(critic.value_head.weight, head_before)


def test_bf16_in_one_process_gives_ratio_one_before_the_first_update(setup, tmp_path):
    """--bf16 without torchrun: rollout, old log-probs and update all run under the same autocast
    (CPU autocast supports bf16), so the first PPO epoch's ratio is exactly 1."""
    args = train_ppo.parse_args(_argv(setup, tmp_path, "--temperature", "1.0", "--bf16"))
    args.score_temperature = 1.0
    info = D.init_distributed("cpu")
    tok = load_tokenizer(os.path.join(setup["model"], "tokenizer.model"))
    prompts, _ = train_ppo.load_prompts(args, tok, lambda *a: None)
    actor, reference, critic, opt_actor, opt_critic = train_ppo.build_models(args, info, tok, bf16=True)
    rollouts, _, _ = train_ppo.collect(
        (actor, reference, critic), tok, prompts, [[0, 1], [2, 3]], 0, args, info, True
    )
    stats = train_ppo.ppo_step(rollouts, actor, critic, opt_actor, opt_critic, args, info, bf16=True)
    assert stats["approx_kl"] == 0.0 and stats["clipfrac"] == 0.0 and stats["value_clipfrac"] == 0.0


def test_end_to_end_and_resume_equals_uninterrupted(setup, tmp_path):
    sampled = ("--temperature", "1.0", "--ppo_epochs", "2")
    train_ppo.main(_argv(setup, tmp_path / "full", "--max_steps", "3", *sampled))
    train_ppo.main(_argv(setup, tmp_path / "cut", "--max_steps", "2", *sampled))
    train_ppo.main(_argv(setup, tmp_path / "cut", "--max_steps", "3", "--resume", *sampled))

    full, cut = _metrics(tmp_path / "full"), _metrics(tmp_path / "cut")
    assert [r["step"] for r in full] == [1, 2, 3]
    assert {
        "score",
        "kl",
        "approx_kl",
        "clipfrac",
        "entropy",
        "value_loss",
        "response_len",
        "gen_share",
        "share_correct",
        "share_wrong_tool",
    } <= set(full[0])
    assert full[0]["kl"] == 0 and full[1]["kl"] != 0  # the actor left the reference after the first update
    _assert_same_losses(full, cut, rtol=1e-5)
    a = load_hf(tmp_path / "full" / "model").state_dict()
    b = load_hf(tmp_path / "cut" / "model").state_dict()
    sft = load_hf(setup["model"]).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(not torch.equal(a[k], sft[k]) for k in a)


def test_one_vs_two_ranks_and_accumulation_give_the_same_losses(setup, tmp_path):
    greedy = ("--max_steps", "2", "--temperature", "0")
    train_ppo.main(_argv(setup, tmp_path / "one", *greedy, "--micro_batch", "4"))
    train_ppo.main(_argv(setup, tmp_path / "accum", *greedy, "--micro_batch", "2"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # FSDP's default, and the weights kept gathered from forward to backward (the smol preset's
    # choice): in both, generation gathers the weights once (tl.dist.gathered) and frees them after.
    for name, reshard in (("two", "--reshard_after_forward"), ("two_kept", "--no-reshard_after_forward")):
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "train_ppo.py",
            *_argv(setup, tmp_path / name, *greedy, "--micro_batch", "2", reshard),
        ]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    one = _metrics(tmp_path / "one")
    _assert_same_losses(one, _metrics(tmp_path / "accum"))
    _assert_same_losses(one, _metrics(tmp_path / "two"))
    _assert_same_losses(one, _metrics(tmp_path / "two_kept"))
    assert one[1]["kl"] > 0  # step 2 ran on updated weights, so the update itself agreed too


def test_max_prompts_is_a_seeded_subset_of_the_kept_prompts(setup, tmp_path):
    tok = load_tokenizer(os.path.join(setup["model"], "tokenizer.model"))
    quiet = lambda *a, **k: None  # noqa: E731
    everything, _ = train_ppo.load_prompts(train_ppo.parse_args(_argv(setup, tmp_path)), tok, quiet)
    subsets = [
        train_ppo.load_prompts(
            train_ppo.parse_args(_argv(setup, tmp_path, "--max_prompts", "3", *seed)), tok, quiet
        )[0]
        for seed in ((), (), ("--seed", "1"))
    ]
    assert len(everything) > 3 and all(len(s) == 3 for s in subsets)
    ids = [[p.id for p in s] for s in subsets]
    assert ids[0] == ids[1] and set(ids[0]) <= {p.id for p in everything}
    assert ids[0] != ids[2]  # another seed, another subset


def test_lr_schedules(setup, tmp_path):
    from tl.training import lr_at

    train_ppo.main(
        _argv(setup, tmp_path / "cos", "--max_steps", "3", "--lr_schedule", "cosine", "--warmup_steps", "1")
    )
    rows = _metrics(tmp_path / "cos")
    assert [r["actor_lr"] for r in rows] == pytest.approx([lr_at(s, 3, 3e-3, 1, 0.0) for s in range(3)])
    assert rows[0]["actor_lr"] == 3e-3 and rows[-1]["critic_lr"] == pytest.approx(
        0.0
    )  # HF's cosine ends at 0
    assert train_ppo.parse_args([]).lr_schedule == "constant"
    paper = train_ppo.parse_args(["--preset", "paper7b", "--sft", "m"])
    assert (paper.lr_schedule, paper.warmup_steps) == ("cosine", 100)
