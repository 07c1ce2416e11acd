"""Supervised fine-tuning with MAE and PKT (TL-Training, paper Sec. 3.1-3.2), FSDP2 under torchrun.

    torchrun --standalone --nproc_per_node=2 train_sft.py          # the CPU demo (preset "demo")
    torchrun --nproc_per_node=8 train_sft.py --preset paper7b --model CodeLlama-7b-hf --data train.jsonl
    python train_sft.py ...                                         # one process, no FSDP

Explicit flags override the preset's values; `--help` lists every flag and PRESETS below every preset value.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import time

import torch
from tqdm import tqdm

from tasks.trajectories import DataError, load_trajectories
from tl import checkpoint as C
from tl import dist as D
from tl.calls import EOS_MARK, render_prompt
from tl.classify import ALL_RIGHT, FEEDBACK_CATEGORIES
from tl.model import ModelArgs
from tl.sft import (
    LR_SCHEDULES,
    MAE_RULES,
    SAMPLE_UNITS,
    build_samples,
    collate,
    epoch_batches,
    lr_at,
    micro_batches,
    param_groups,
    short_first_batch,
    short_first_pool,
    weighted_token_loss,
)
from tl.tokenizer import Tokenizer, train_tokenizer

PRESETS = {
    # A few minutes on 2 CPU cores: synthetic data, a tokenizer trained on it, a small LLaMA. The
    # first 30% of steps on the shortest samples: copying values is learnt sooner (tl.sft.short_first_batch).
    "demo": dict(
        data="out/data/train.jsonl",
        lr=3e-3,
        min_lr_ratio=0.1,
        warmup_ratio=0.1,
        epochs=1,
        global_batch=8,
        micro_batch=4,
        max_seq_len=768,
        vocab_size=1024,
        hidden_size=192,
        num_layers=4,
        num_heads=4,
        short_first=0.3,
        bf16=False,
        activation_checkpointing=False,
        save_every=100,
    ),
    # The paper's 7B run (Sec. 4.4 + the authors' script): CodeLLaMA-2-7B, full fine-tune, lr 1e-6, batch 4,
    # 1 epoch, 8192 tokens. Where the paper and the authors' code differ, the paper's formula: whole
    # trajectories and a cosine schedule (to 0, as HF's). The authors' run: add --sample_unit turn
    # --mae_rule authors --lr_schedule constant.
    "paper7b": dict(
        lr=1e-6,
        min_lr_ratio=0.0,
        epochs=1,
        global_batch=4,
        micro_batch=1,
        max_seq_len=8192,
        bf16=True,
        activation_checkpointing=True,
        save_every=100,
        export_dtype="bfloat16",
    ),
}
# The demo trained 4x longer (~17 min on 2 cores): reaches the demo's tool-use targets (docs/MEASUREMENTS.md).
PRESETS["demo_long"] = dict(PRESETS["demo"], epochs=4, save_every=500)
DEFAULTS = dict(
    data="out/data/train.jsonl",
    lr=1e-5,
    min_lr_ratio=0.1,
    warmup_ratio=0.01,
    short_first=0.0,
    epochs=1,
    global_batch=16,
    micro_batch=1,
    max_seq_len=2048,
    vocab_size=1024,
    hidden_size=192,
    num_layers=4,
    num_heads=4,
    bf16=None,
    activation_checkpointing=False,
    save_every=0,
    export_dtype=None,
)
# More than the paper's 1,217: the generator is free, and varied values make copying pay off.
DEMO_TRAJECTORIES = 8000
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
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: demo when --model is not given")
    p.add_argument("--data", help="trajectories (JSONL, project or authors' raw format)")
    p.add_argument("--model", help="HF LLaMA directory to fine-tune (default: a small random LLaMA)")
    p.add_argument("--tokenizer", help="tokenizer.model (default: beside --model; demo: trained on the data)")
    p.add_argument("--out", default="out/sft", help="run directory: metrics.jsonl, checkpoints/, model/")
    p.add_argument("--mae", action=argparse.BooleanOptionalAction, default=True, help="mask erroneous calls")
    p.add_argument(
        "--mae_rule",
        choices=MAE_RULES,
        default="taxonomy",
        help="which feedback is an error: the error taxonomy, or the authors' substring list",
    )
    p.add_argument("--pkt", action=argparse.BooleanOptionalAction, default=True, help="weight key tokens")
    p.add_argument("--w_max", type=float, default=9.0, help="PKT weight clip")
    p.add_argument("--lr", type=float)
    p.add_argument("--min_lr_ratio", type=float, help="cosine floor as a fraction of --lr")
    p.add_argument("--warmup_ratio", type=float)
    p.add_argument(
        "--short_first", type=float, help="fraction of steps (from the start) on the shortest samples"
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
    p.add_argument("--epochs", type=int)
    p.add_argument("--max_steps", type=int, help="stop after this many optimizer steps (default: all epochs)")
    p.add_argument("--global_batch", type=int, help="samples per optimizer step, over all ranks")
    p.add_argument("--micro_batch", type=int, help="samples per forward pass per rank")
    p.add_argument("--max_seq_len", type=int)
    p.add_argument("--overlong", choices=("drop", "truncate"), default="drop")
    p.add_argument("--skip_bad_records", action="store_true", help="skip invalid records (default: stop)")
    D.add_run_args(p)  # --seed, --device, --bf16, checkpoints, --resume, --grad_clip, ...
    for name in ("vocab_size", "hidden_size", "num_layers", "num_heads"):
        p.add_argument(f"--{name}", type=int, help="random model / demo tokenizer shape")
    p.add_argument("--kill_at_step", type=int, help=argparse.SUPPRESS)  # fault injection for the resume test
    args = p.parse_args(argv)
    return D.apply_preset(args, PRESETS, DEFAULTS, args.preset or ("demo" if args.model is None else None))


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
    """Generate the synthetic demo data when the default path is missing (rank 0 only)."""
    if not os.path.exists(args.data) and args.data == DEFAULTS["data"] and info.is_main:
        from tasks.synth import write_splits

        print(
            f"{args.data} not found: generating the synthetic demo data (python -m tasks.synth)", flush=True
        )
        paths = write_splits(args.data, n=DEMO_TRAJECTORIES, seed=0)
        print("  wrote " + ", ".join(paths.values()))
    D.barrier(info)


def prepare_tokenizer(args, info, records):
    """--tokenizer, else the one beside --model, else (demo) one trained on the training data."""
    path = args.tokenizer or (
        os.path.join(args.model, "tokenizer.model")
        if args.model
        else os.path.join(args.out, "tokenizer.model")
    )
    if not args.model and not args.tokenizer and info.is_main and not os.path.exists(path):
        texts = [
            piece
            for r in records
            for piece in render_prompt(r["tools"], r["messages"], add_generation_prompt=False).split(EOS_MARK)
        ]
        train_tokenizer(texts, path, vocab_size=args.vocab_size)
        print(
            f"trained a {Tokenizer(path).vocab_size}-piece tokenizer on {len(records)} trajectories: {path}"
        )
    D.barrier(info)
    return Tokenizer(path)


def main(argv=None):
    args = parse_args(argv)
    if args.preset == "paper7b" and not args.model:
        raise SystemExit(
            "--preset paper7b fine-tunes a given model: pass --model (an HF CodeLLaMA-2-7B directory)"
        )
    info = D.init_distributed(args.device)
    if args.global_batch % (args.micro_batch * info.world_size):
        raise SystemExit(
            f"--global_batch {args.global_batch} must be a multiple of --micro_batch "
            f"{args.micro_batch} x {info.world_size} rank(s)"
        )
    log = print if info.is_main else (lambda *a, **k: None)
    bf16 = info.device.type == "cuda" if args.bf16 is None else args.bf16
    torch.manual_seed(args.seed)

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
        f"{stats['overlong']} longer than {args.max_seq_len} tokens ({args.overlong}), {stats['untrained']} with "
        f"no trained token dropped, {len(samples)} samples, "
        f"{stats['trained_tokens']} trained tokens, {stats['key_tokens']} PKT key tokens"
    )
    log(mae_table(stats) if args.mae else "MAE off: erroneous calls are trained like the others")

    source = args.model or ModelArgs(
        vocab_size=tok.vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=4 * args.hidden_size * 2 // 3 // 16 * 16,
        num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads,
        max_position_embeddings=args.max_seq_len,
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
    )
    model = D.load_model(
        source,
        info,
        seed=args.seed,
        bf16=bf16,
        tokenizer=tok,
        activation_checkpointing=args.activation_checkpointing,
    )
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95))

    steps_per_epoch = len(samples) // args.global_batch
    total_steps = min(args.max_steps or 10**12, args.epochs * steps_per_epoch)
    if total_steps < 1:
        raise SystemExit(f"{len(samples)} samples give no full global batch of {args.global_batch}")
    lengths = [len(s.input_ids) for s in samples]
    # the data file's content, not just its path, defines the run
    run = {**{k: getattr(args, k) for k in RUN_DEFINING}, "data_sha256": C.file_sha256(args.data)}
    ckpt_dir = os.path.join(args.out, "checkpoints")
    start, _ = D.resume(args, info, {"model": model}, {"model": optimizer}, run, log)
    log(
        f"model: {n_params / 1e6:.2f}M parameters, {info.world_size} rank(s) on {info.device}"
        f"{' with FSDP2' if info.distributed else ''}, bf16={bf16}; {total_steps} steps of "
        f"{args.global_batch} samples ({args.micro_batch} per micro-batch, "
        f"{args.global_batch // (args.micro_batch * info.world_size)} accumulation steps)"
    )

    model.train()
    epoch_cache, short_steps = {}, int(args.short_first * total_steps)
    short_pool = short_first_pool(lengths, args.global_batch) if short_steps else []
    bar = tqdm(total=total_steps, initial=start, disable=not info.is_main, desc="sft", dynamic_ncols=True)
    for step in range(start, total_steps):
        t0 = time.perf_counter()
        epoch, index = divmod(step, steps_per_epoch)
        if epoch not in epoch_cache:
            epoch_cache = {epoch: epoch_batches(lengths, args.global_batch, args.seed, epoch)}
        batch = (
            short_first_batch(short_pool, args.global_batch, args.seed, step)
            if step < short_steps
            else epoch_cache[epoch][index]
        )
        mine = [
            collate([samples[i] for i in mb], tok.pad_id, info.device)
            for mb in micro_batches(batch, info.rank, info.world_size, args.micro_batch)
        ]
        if args.sample_unit == "turn":  # each sample its own weighted mean, then the mean over samples
            for mb in mine:
                mb["weights"] = mb["weights"] / mb["weights"].sum(1, keepdim=True)
        # One normaliser for the whole step: the global sum of weights (see tl/sft.py).
        normaliser = D.all_reduce_sum(sum(mb["weights"].sum() for mb in mine), info)
        step_loss = torch.zeros((), device=info.device)
        for k, mb in enumerate(mine):
            if info.distributed:  # reduce-scatter gradients only after the last micro-batch
                model.set_requires_gradient_sync(k == len(mine) - 1)
            with D.compute_context(info, bf16):
                logits = model(mb["input_ids"], attention_mask=mb["attention_mask"])
            loss = weighted_token_loss(logits, mb["targets"], mb["weights"], normaliser)
            # FSDP2 averages gradients over ranks; this rank's loss is its share of a global sum.
            (loss * info.world_size).backward()
            step_loss += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        lr = lr_at(
            step,
            total_steps,
            args.lr,
            math.ceil(args.warmup_ratio * total_steps),
            args.min_lr_ratio,
            args.lr_schedule,
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_loss = D.all_reduce_sum(step_loss, info).item()
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
        D.log_metrics(args, info, record)
        if info.is_main:
            bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{tokens / dt:.0f}")
            bar.update()
        if step + 1 == args.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < total_steps:
            C.save_checkpoint(
                ckpt_dir, step + 1, info, {"model": model}, {"model": optimizer}, {"run": run}, keep=args.keep
            )
    bar.close()
    C.save_checkpoint(
        ckpt_dir, total_steps, info, {"model": model}, {"model": optimizer}, {"run": run}, keep=args.keep
    )
    export = os.path.join(args.out, "model")
    C.export_hf(
        model,
        export,
        info,
        tokenizer=tok,
        dtype=getattr(torch, args.export_dtype) if args.export_dtype else None,
    )
    if info.is_main:
        losses = [r["loss"] for r in D.read_metrics(args)]
        print(
            f"\ndone: {total_steps} steps, loss {losses[0]:.3f} (step 1) -> {losses[-1]:.3f} (step {total_steps})"
            f"\n  run directory: {args.out} (metrics.jsonl, checkpoints/)"
            f"\n  HF model:      {export} (Transformer.from_pretrained / LlamaForCausalLM.from_pretrained)"
            f"\n  next:          torchrun --standalone --nproc_per_node=2 train_ppo.py"
            + ("" if export == "out/sft/model" else f" --sft {export}")
            + f"\n                 python evaluate.py --model {export}"
        )


if __name__ == "__main__":
    try:
        main()
    except (DataError, FileNotFoundError) as e:  # bad input: one line naming the file, no traceback
        raise SystemExit(f"train_sft.py: {e}") from None
    D.close_distributed()  # not in main(): a test runs main() several times in one process group
