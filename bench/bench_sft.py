"""SFT step throughput (tokens/s, padding excluded): one process vs FSDP2 on 2 ranks, same global batch.

    python bench/bench_sft.py                 # CPU: the demo model on the synthetic data
    python bench/bench_sft.py --device cuda --hidden_size 2048 --num_layers 16 --num_heads 16 \\
        --peak_tflops 989 --nproc 8           # a 1B-shaped model with FSDP2, bf16, MFU printed

Both runs are train_sft.py itself (same data order, same batches) for --steps optimizer steps;
the first --warmup steps are left out and the median of the rest is reported. Runs follow each
other on the same machine, so the ratio is the figure to read on a shared or noisy machine.
MFU = 6 * params * tokens/s (+ attention) / (nproc * peak), printed when --peak_tflops is given.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(label, launcher, train_args, out, env):
    cmd = launcher + [os.path.join(ROOT, "train_sft.py"), *train_args, "--out", out]
    # Its own session, as torchrun gives its workers: on a busy Linux machine the scheduler
    # shares CPU per session (autogroup), so a plain child of this shell would get less.
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, start_new_session=True)
    if done.returncode:
        sys.exit(f"{label} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


def flops_per_token(n_params, layers, hidden, seq):
    """6N for the matmuls (forward + backward) plus 6 * layers * seq * hidden for attention
    scores and values (PaLM's estimate, causal halving ignored)."""
    return 6 * n_params + 6 * layers * seq * hidden


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="out/data/train.jsonl")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--global_batch", type=int, default=16)
    p.add_argument("--micro_batch", type=int, default=8)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--hidden_size", type=int, default=192)
    p.add_argument("--num_layers", type=int, default=4)
    p.add_argument("--num_heads", type=int, default=4)
    p.add_argument("--activation_checkpointing", action="store_true")
    p.add_argument(
        "--single_threads",
        default="1",
        help="comma-separated torch thread counts for the "
        "single-process runs (torchrun gives each rank 1); more threads than free cores spin badly",
    )
    p.add_argument("--peak_tflops", type=float, help="per-device peak (e.g. 989 for H100 bf16 dense)")
    args = p.parse_args()
    if not os.path.exists(os.path.join(ROOT, args.data)):
        subprocess.run([sys.executable, "-m", "tasks.synth", "--out", args.data], cwd=ROOT, check=True)
    train_args = [
        "--data",
        args.data,
        "--max_steps",
        str(args.steps),
        "--global_batch",
        str(args.global_batch),
        "--micro_batch",
        str(args.micro_batch),
        "--device",
        args.device,
        "--hidden_size",
        str(args.hidden_size),
        "--num_layers",
        str(args.num_layers),
        "--num_heads",
        str(args.num_heads),
    ]
    train_args += ["--activation_checkpointing"] if args.activation_checkpointing else []
    env = {**os.environ, "PYTHONPATH": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        # The tokenizer is trained once, by the first run, and reused by the others.
        runs, tok = {}, []
        for threads in args.single_threads.split(","):
            label = f"1 process, {threads} thr"
            runs[label] = run(
                label,
                [sys.executable],
                train_args + tok,
                os.path.join(tmp, label),
                {**env, "OMP_NUM_THREADS": threads},
            )
            tok = tok or ["--tokenizer", os.path.join(tmp, label, "tokenizer.model")]
        fsdp = f"FSDP2 x {args.nproc}"
        runs[fsdp] = run(
            fsdp,
            [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}"],
            train_args + tok,
            os.path.join(tmp, "fsdp"),
            env,
        )
        from safetensors import safe_open  # the parameter count, from the exported model

        with safe_open(os.path.join(tmp, "fsdp", "model", "model.safetensors"), "pt") as f:
            n_params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    results = {}
    for label, metrics in runs.items():
        kept = metrics[args.warmup :]
        results[label] = {
            "tokens_per_s": statistics.median(m["tokens_per_s"] for m in kept),
            "step_s": statistics.median(m["step_time_s"] for m in kept),
            "tokens_per_step": statistics.mean(m["tokens"] for m in kept),
        }
    print(
        f"SFT step throughput: {n_params / 1e6:.2f}M params, global batch {args.global_batch}, micro-batch "
        f"{args.micro_batch}, device {args.device}, median of steps {args.warmup + 1}-{args.steps}"
    )
    print(f"{'run':<22}{'tokens/s':>10}{'s/step':>10}")
    for label, r in results.items():
        print(f"{label:<22}{r['tokens_per_s']:>10.0f}{r['step_s']:>10.3f}")
    for label in results:
        if label != fsdp:
            print(
                f"{fsdp} / {label}: {results[fsdp]['tokens_per_s'] / results[label]['tokens_per_s']:.2f}x "
                f"(torchrun gives each rank 1 thread)"
            )
    if args.peak_tflops:
        seq = results[fsdp]["tokens_per_step"] / args.global_batch
        flops = flops_per_token(n_params, args.num_layers, args.hidden_size, seq)
        mfu = flops * results[fsdp]["tokens_per_s"] / (args.nproc * args.peak_tflops * 1e12)
        print(f"MFU ({fsdp}): {100 * mfu:.1f}% of {args.peak_tflops} TFLOP/s per device")


if __name__ == "__main__":
    main()
