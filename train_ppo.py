"""PPO with the error-category reward (TL-Training's IRM, paper Sec. 3.3), FSDP2 under torchrun.

    torchrun --standalone --nproc_per_node=2 train_ppo.py      # CPU demo: continues out/sft/model
    torchrun --nproc_per_node=8 train_ppo.py --preset paper7b --sft out/sft/model --data train.jsonl
    python train_ppo.py ...                                      # one process, no FSDP

Actor and reference start from the SFT export; the critic is the SFT trunk plus a zero value head.
Each step: generate one call per prompt, score it with R(t) (tl/classify.py), one PPO update
(tl/ppo.py); with --multi_turn, whole episodes in the sandbox, one R(t) per output with calls.
Explicit flags override the preset's values; `--help` shows every flag's default and each preset's
value for it, and OUT/args.json the settings a run used.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import torch
from tqdm import tqdm

from tasks.synth import SMOL_PPO_DATA, write_preset_data
from tasks.toolbox import TOOLS
from tasks.trajectories import load_trajectories
from tl import checkpoint, dist, hf, ppo, rundir
from tl.classify import CALL_CATEGORIES
from tl.errors import InputError
from tl.sandbox import Sandbox
from tl.tokenizer import load_tokenizer
from tl.training import (
    LR_SCHEDULES,
    backward_share,
    epoch_batches,
    load_model,
    lr_at,
    micro_batches,
    param_groups,
)

# The pretrained recipe's actor learning rate and steps, chosen from measured runs (docs/MEASUREMENTS.md).
SMOL_ACTOR_LR = 1e-6
SMOL_STEPS = 20

PRESETS = {
    # A few minutes on 2 CPU cores, from the SFT demo's export. Not the paper's settings: a small
    # model needs larger learning rates, and a zero value head facing scores near -2 must be fitted
    # first (critic warm-up, a fast critic lr, no value clip) or every advantage is negative.
    # Several passes over a fixed set of prompts, as the paper makes 3 over its 1,194
    # (docs/MEASUREMENTS.md). On the CPU whatever GPUs are visible, to reproduce the CPU figures.
    "demo": dict(
        device="cpu",
        actor_lr=1e-4,
        critic_lr=2e-3,
        critic_warmup_steps=3,
        value_clip_eps=0.0,
        lam=1.0,
        batch_size=16,
        micro_batch=8,
        ppo_epochs=2,
        epochs=5,
        max_prompts=128,
        temperature=0.7,
        max_new_tokens=48,
        max_prompt_len=1024,
        kl_coef=0.1,
    ),
    # From the pretrained recipe's SFT export (train_sft.py --preset smol): the demo's choices, and
    # for the same reasons, at a learning rate and step count measured for this model
    # (docs/MEASUREMENTS.md, "Pretrained"); bf16 where the CPU has it.
    "smol": dict(
        sft="out/smol/sft/model",
        data=SMOL_PPO_DATA,
        out="out/smol/ppo",
        actor_lr=SMOL_ACTOR_LR,
        critic_lr=10 * SMOL_ACTOR_LR,
        critic_warmup_steps=3,
        value_clip_eps=0.0,
        batch_size=16,
        micro_batch=8,
        ppo_epochs=2,
        epochs=1,
        max_steps=SMOL_STEPS,
        temperature=0.7,
        max_new_tokens=64,
        max_prompt_len=1024,
        kl_coef=0.1,
        save_every=10,
        reshard_after_forward=False,  # as its SFT preset
    ),
    # The paper (Sec. 4.4: lr 2e-6 / 1e-6, batch 8, 3 epochs) and its code (greedy rollouts, answers
    # up to 512 tokens, prompts up to 8192, beta 0.4 hard-coded in its trainer, 1 PPO epoch, a cosine
    # schedule with 100 warm-up steps for actor and critic; the paper states no schedule).
    "paper7b": dict(
        bf16=True,
        activation_checkpointing=True,
        export_dtype="bfloat16",
        lr_schedule="cosine",
        warmup_steps=100,
    ),
}

# Settings that define what a run computes: --resume refuses to continue a run if one changed.
RUN_DEFINING = (
    "sft",
    "data",
    "max_prompts",
    "seed",
    "batch_size",
    "epochs",
    "ppo_epochs",
    "actor_lr",
    "critic_lr",
    "lr_schedule",
    "warmup_steps",
    "temperature",
    "max_new_tokens",
    "max_prompt_len",
    "kl_coef",
    "lam",
    "value_clip_eps",
    "critic_warmup_steps",
    "grad_clip",
    "multi_turn",
    "max_turns",
    "max_seq_len",
)


def parse_args(argv=None):
    """The flags' defaults are the paper's settings (Sec. 4.4) and its code's (PPO.md)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="settings of a named run (default: demo when --sft is not given)",
    )
    p.add_argument(
        "--sft",
        default="out/sft/model",
        help="HF directory of the SFT model (actor, reference and critic trunk)",
    )
    p.add_argument(
        "--data",
        default="out/data/train.jsonl",
        help="trajectories (JSONL); every call with all-right feedback is a prompt",
    )
    p.add_argument(
        "--out", default="out/ppo", help="run directory: args.json, metrics.jsonl, checkpoints/, model/"
    )
    p.add_argument(
        "--max_prompts",
        type=int,
        default=0,
        help="train on a seeded random subset of this many prompts (0: all)",
    )
    p.add_argument(
        "--multi_turn", action="store_true", help="episodes in the sandbox from each trajectory's first query"
    )
    p.add_argument("--max_turns", type=int, default=4, help="--multi_turn: outputs per episode (ToolEyes: 9)")
    p.add_argument("--max_seq_len", type=int, default=2048, help="--multi_turn: longest episode sequence")
    p.add_argument("--actor_lr", type=float, default=2e-6, help="the actor's learning rate")
    p.add_argument("--critic_lr", type=float, default=1e-6, help="the critic's learning rate")
    p.add_argument("--lr_schedule", choices=LR_SCHEDULES, default="constant", help="both models' schedule")
    p.add_argument("--warmup_steps", type=int, default=0, help="linear lr warm-up steps")
    p.add_argument("--batch_size", type=int, default=8, help="prompts per PPO step, over all ranks")
    p.add_argument("--micro_batch", type=int, default=1, help="prompts per forward pass per rank")
    p.add_argument("--epochs", type=int, default=3, help="passes over the prompts")
    p.add_argument("--ppo_epochs", type=int, default=1, help="updates per rollout batch")
    p.add_argument("--critic_warmup_steps", type=int, default=0, help="first steps train only the critic")
    p.add_argument("--max_steps", type=int, default=0, help="stop after this many PPO steps (0: all epochs)")
    p.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="0: greedy (the paper's script); >0: sampling, scored at the same T",
    )
    p.add_argument("--max_new_tokens", type=int, default=512, help="longest response")
    p.add_argument("--max_prompt_len", type=int, default=8192, help="longer prompts are dropped (counted)")
    p.add_argument("--kl_coef", type=float, default=0.4, help="beta of the per-token KL penalty")
    p.add_argument("--lam", type=float, default=0.95, help="GAE lambda")
    p.add_argument("--value_clip_eps", type=float, default=0.2, help="value clip; 0: none")
    rundir.add_run_args(p)  # --seed, --device, --bf16, checkpoints, --resume, --grad_clip, ...
    return rundir.parse_with_presets(
        p, PRESETS, argv, lambda args: "demo" if args.sft == "out/sft/model" else None
    )


def load_prompts(args, tok, log):
    """The prompts (tl.ppo.prompts_from_trajectories; --multi_turn: tasks) no longer than
    --max_prompt_len, and their lengths."""
    records, _ = load_trajectories(args.data)
    if args.multi_turn:
        prompts = ppo.tasks_from_trajectories(records)
        what = f"{len(prompts)} tasks from {len(records)} trajectories (first query, tools)"
    else:
        prompts, counts = ppo.prompts_from_trajectories(records)
        dropped = [
            f"{k.removeprefix('dropped_')} {v}" for k, v in sorted(counts.items()) if k.startswith("dropped_")
        ]
        what = (
            f"{counts['kept']} of {counts['calls']} calls kept "
            f"(all-right feedback; dropped: {', '.join(dropped) or 'none'})"
        )
    lengths = [len(ppo.encode_prompt(tok, p)) for p in prompts]
    keep = [i for i, n in enumerate(lengths) if n <= args.max_prompt_len]
    too_long = len(prompts) - len(keep)
    log(f"prompts: {args.data}: {what}; {too_long} longer than {args.max_prompt_len} tokens dropped")
    # --max_prompts subsets single-turn prompts; multi-turn tasks are all used, each seen once
    if args.max_prompts and args.max_prompts < len(keep) and not args.multi_turn:
        keep = sorted(random.Random(args.seed).sample(keep, args.max_prompts))
        log(f"prompts: a random subset of {len(keep)} (--max_prompts)")
    return [prompts[i] for i in keep], [lengths[i] for i in keep]


def build_models(args, info, tok, bf16):
    """Actor, frozen reference and critic from the SFT export, and one AdamW per trained model."""
    common = dict(
        bf16=bf16,
        activation_checkpointing=args.activation_checkpointing,
        reshard_after_forward=args.reshard_after_forward,
        tokenizer=tok,
    )
    actor = load_model(args.sft, info, **common)
    reference = load_model(args.sft, info, **common).requires_grad_(False).eval()
    critic = load_model(args.sft, info, wrap=ppo.Critic, **common)
    opt_actor = torch.optim.AdamW(param_groups(actor, 0.0), lr=args.actor_lr, betas=(0.9, 0.95))
    opt_critic = torch.optim.AdamW(param_groups(critic, 0.0), lr=args.critic_lr, betas=(0.9, 0.95))
    return actor, reference, critic, opt_actor, opt_critic


def collect(models, tok, prompts, mine, step, args, info, bf16, executor=None):
    """This rank's rollouts, scored with advantages, under the update's compute context (so the
    ratio is exactly 1 before the first update). Returns them, the generation time and the sums
    (sequence KL, sequences, entropy)."""
    actor, reference, critic = models
    with dist.compute_context(info, bf16):
        t0 = time.perf_counter()
        rollouts = []
        for k, micro_batch in enumerate(mine):
            batch = [prompts[i] for i in micro_batch]
            # a seed per (run, step, rank, micro-batch): sampling is reproducible at any world size
            seed = (args.seed * 1_000_003 + step) * 1009 + info.rank * 31 + k
            sampling = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=seed)
            if args.multi_turn:
                rollout = ppo.episode_rollout(
                    actor,
                    tok,
                    batch,
                    executor,
                    max_turns=args.max_turns,
                    max_len=args.max_seq_len,
                    **sampling,
                )
            else:
                rollout = ppo.rollout(actor, tok, batch, **sampling)
            rollouts.append(rollout)
        gen_time = time.perf_counter() - t0
        sums = torch.zeros(3, dtype=torch.float64)  # sequence KL, sequences, entropy
        for b in rollouts:
            ppo.score(b, actor, reference, critic, args.score_temperature)
            kl = ppo.compute_advantages(b, args.kl_coef, 1.0, args.lam)  # [B, R]
            entropy = torch.where(b.response_mask.bool(), b.entropy.cpu(), 0.0).sum()
            sums += torch.tensor([kl.sum().item(), len(b.texts), entropy.item()], dtype=torch.float64)
    return rollouts, gen_time, sums


def ppo_step(batches, actor, critic, opt_actor, opt_critic, args, info, bf16, train_actor=True):
    """`ppo_epochs` optimizer steps per model over this rank's rollouts, losses normalised by the
    global count of response tokens (train_actor=False: only the critic learns). Returns the
    all-reduced, token-averaged stats and the grad norms."""
    n_tokens = dist.all_reduce_sum(sum(b.response_mask.sum() for b in batches).float(), info)
    sums = torch.zeros(5)  # policy loss, value loss, clipped tokens, approx-KL, value-clipped tokens
    norms = []
    value_clip = args.value_clip_eps or float("inf")  # 0: no value clip
    for _ in range(args.ppo_epochs):
        for k, b in enumerate(batches):
            if info.distributed:  # reduce-scatter gradients only after the last micro-batch
                for model in (actor, critic):
                    model.set_requires_gradient_sync(k == len(batches) - 1)
            ids = b.input_ids.to(info.device)  # [B, P + R]
            attention = b.attention_mask.to(info.device)  # [B, P + R]
            mask = b.response_mask.to(info.device)  # [B, R]
            with dist.compute_context(info, bf16), torch.set_grad_enabled(train_actor):
                logp, _ = ppo.response_logprobs(actor, ids, attention, b.response_len, args.score_temperature)
                policy_loss, pstats = ppo.policy_loss(logp, b.logp_old, b.advantages, mask, n_tokens)
                if train_actor:
                    backward_share(policy_loss, info)
            with dist.compute_context(info, bf16):
                values = ppo.response_values(critic, ids, attention, b.response_len)  # [B, R]
                value_loss, vstats = ppo.value_loss(values, b.values, b.returns, mask, n_tokens, value_clip)
                backward_share(value_loss, info)
            step_sums = [
                policy_loss.detach() * n_tokens,
                value_loss.detach() * n_tokens,
                pstats["clipped"],
                pstats["approx_kl"],
                vstats["clipped"],
            ]
            sums += torch.stack(step_sums).cpu()
        trained = [(actor, opt_actor), (critic, opt_critic)] if train_actor else [(critic, opt_critic)]
        for model, opt in trained:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            norms.append((norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item())
            opt.step()
            opt.zero_grad(set_to_none=True)
    sums = dist.all_reduce_sum(sums, info) / (n_tokens.cpu() * args.ppo_epochs)
    names = ("policy_loss", "value_loss", "clipfrac", "approx_kl", "value_clipfrac")
    return {
        **dict(zip(names, sums.tolist())),
        "actor_grad_norm": norms[-2] if train_actor else 0.0,
        "critic_grad_norm": norms[-1],
    }


def step_record(step, epoch, rollouts, kl_sums, stats, times, args, info, opt_actor, opt_critic) -> dict:
    """One metrics.jsonl line: the step's scores, category shares, KL, losses and times, over all ranks."""
    gen_time, score_time, train_time = times
    per_category = [
        sum(c == category for b in rollouts for c in b.categories) for category in CALL_CATEGORIES
    ]
    local = [
        *per_category,
        sum(b.scores.sum().item() for b in rollouts),
        sum(b.response_mask.sum().item() for b in rollouts),
        *kl_sums.tolist(),
    ]
    totals = dist.all_reduce_sum(torch.tensor(local, dtype=torch.float64), info).tolist()
    *counts, score, n_tok, kl, n_seq, entropy = totals
    return {
        "step": step + 1,
        "epoch": epoch,
        "score": score / n_seq,
        **{f"share_{c}": n / max(sum(counts), 1) for c, n in zip(CALL_CATEGORIES, counts)},
        "kl": kl / n_seq,
        "kl_coef": args.kl_coef,
        "actor_lr": opt_actor.param_groups[0]["lr"],
        "critic_lr": opt_critic.param_groups[0]["lr"],
        **stats,
        "entropy": entropy / n_tok,
        "response_len": n_tok / n_seq,
        "gen_time_s": gen_time,
        "score_time_s": score_time,
        "train_time_s": train_time,
        "gen_share": gen_time / (gen_time + score_time + train_time),
        "gen_tokens_per_s": n_tok / gen_time,
    }


def summary(args, total_steps: int, export: str) -> str:
    """The closing lines: the mean score early and late, per pass over the prompts, and the outputs."""
    rows = rundir.read_metrics(args)
    scores = [r["score"] for r in rows]
    w = max(1, len(rows) // 4)
    text = (
        f"\ndone: {total_steps} steps, mean score {sum(scores[:w]) / w:+.3f} (first {w} steps) -> "
        f"{sum(scores[-w:]) / w:+.3f} (last {w} steps)"
    )
    epochs = sorted({r["epoch"] for r in rows})
    if len(epochs) > 1:  # each pass sees the same prompts: comparable means
        for e in epochs:
            per_pass = [r["score"] for r in rows if r["epoch"] == e]
            text += (
                f"\n  pass {e + 1}: mean score {sum(per_pass) / len(per_pass):+.3f} ({len(per_pass)} steps)"
            )
    text += (
        f"\n  run directory: {args.out} (args.json, metrics.jsonl, checkpoints/)"
        f"\n  HF model:      {export}"
        f"\n  next:          python evaluate.py --model {export}"
    )
    return text


def main(argv=None):
    args = parse_args(argv)
    args.score_temperature = args.temperature or 1.0  # greedy tokens are scored under the plain softmax
    info = dist.init_distributed(args.device)
    log = print if info.is_main else (lambda *a, **k: None)
    bf16 = dist.use_bf16(args.bf16, info.device)
    torch.manual_seed(args.seed)
    rundir.save_args(args, info)
    if not os.path.isfile(os.path.join(args.sft, "config.json")):
        raise SystemExit(
            f"{args.sft}: no SFT model (config.json) found; run `torchrun --standalone "
            f"--nproc_per_node=2 train_sft.py` first, or pass --sft"
        )
    tok = load_tokenizer(args.sft)
    if info.is_main:
        write_preset_data(args.data, log)  # a preset's prompts are generated when missing
    dist.barrier(info)
    prompts, lengths = load_prompts(args, tok, log)
    if args.batch_size % (info.world_size * args.micro_batch):
        raise SystemExit(
            f"--batch_size {args.batch_size} must be a multiple of {info.world_size} rank(s) x "
            f"--micro_batch {args.micro_batch}"
        )

    actor, reference, critic, opt_actor, opt_critic = build_models(args, info, tok, bf16)
    steps_per_epoch = len(prompts) // args.batch_size
    total_steps = min(args.max_steps or 10**12, args.epochs * steps_per_epoch)
    if total_steps < 1:
        raise SystemExit(f"{len(prompts)} prompts give no full batch of {args.batch_size}")
    run = {k: getattr(args, k) for k in RUN_DEFINING}
    run["data_sha256"] = checkpoint.file_sha256(args.data)  # the data's content, not just its path
    models = {"actor": actor, "critic": critic}
    optimizers = {"actor": opt_actor, "critic": opt_critic}
    ckpt_dir = os.path.join(args.out, "checkpoints")
    start, _ = rundir.resume(args, info, models, optimizers, run, log)
    n_params = sum(p.numel() for p in actor.parameters())
    sharding = " with FSDP2" if info.distributed else ""
    unit = "tasks" if args.multi_turn else "prompts"
    sampling = f"T={args.temperature}" if args.temperature else "greedy"
    log(
        f"models: actor / reference / critic of {n_params / 1e6:.2f}M parameters, {info.world_size} rank(s) on "
        f"{info.device}{sharding}; {total_steps} steps of {args.batch_size} {unit}, {sampling} rollouts, "
        f"beta={args.kl_coef}"
    )

    # The loop: rollouts, their scores and advantages, then one PPO update per step.
    executor = Sandbox(TOOLS) if args.multi_turn else None  # --multi_turn: the real sandbox over the toolbox
    bar = tqdm(total=total_steps, initial=start, disable=not info.is_main, desc="ppo", dynamic_ncols=True)
    batches = {}
    for step in range(start, total_steps):
        epoch, index = divmod(step, steps_per_epoch)
        if (
            epoch not in batches
        ):  # random batches, not length-bucketed: each step samples the whole prompt set
            batches = {epoch: epoch_batches(lengths, args.batch_size, args.seed, epoch, bucket_batches=1)}
        mine = micro_batches(batches[epoch][index], info.rank, info.world_size, args.micro_batch)
        for opt, lr in ((opt_actor, args.actor_lr), (opt_critic, args.critic_lr)):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total_steps, lr, args.warmup_steps, 0.0, args.lr_schedule)
        t0 = time.perf_counter()
        rollouts, gen_time, kl_sums = collect(
            (actor, reference, critic), tok, prompts, mine, step, args, info, bf16, executor
        )
        t1 = time.perf_counter()
        train_actor = step >= args.critic_warmup_steps
        stats = ppo_step(rollouts, actor, critic, opt_actor, opt_critic, args, info, bf16, train_actor)
        t2 = time.perf_counter()

        times = (gen_time, t1 - t0 - gen_time, t2 - t1)
        record = step_record(step, epoch, rollouts, kl_sums, stats, times, args, info, opt_actor, opt_critic)
        rundir.log_metrics(args, info, record)
        if info.is_main:
            score, kl, share = record["score"], record["kl"], record["gen_share"]
            bar.set_postfix(score=f"{score:.2f}", kl=f"{kl:.3f}", gen=f"{share:.0%}")
            bar.update()
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < total_steps:
            checkpoint.save_checkpoint(ckpt_dir, step + 1, info, models, optimizers, {"run": run}, args.keep)
    bar.close()
    if executor is not None:
        executor.close()

    checkpoint.save_checkpoint(ckpt_dir, total_steps, info, models, optimizers, {"run": run}, args.keep)
    export = os.path.join(args.out, "model")
    export_dtype = getattr(torch, args.export_dtype) if args.export_dtype else None
    hf.export_hf(actor, export, info, tokenizer=tok, dtype=export_dtype)
    if info.is_main:
        print(summary(args, total_steps, export))


if __name__ == "__main__":
    try:
        main()
    except (InputError, FileNotFoundError) as e:  # bad input: one line naming the file, no traceback
        raise SystemExit(f"train_ppo.py: {e}") from None
    dist.close_distributed()
