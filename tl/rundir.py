"""A training script's settings and its run directory OUT: the command line with its presets,
the resolved settings (OUT/args.json), resume from OUT/checkpoints/, and OUT/metrics.jsonl.

Settings have one source per script: its argparse flags, whose defaults are the plain values,
and its PRESETS, each a dict of flag values that replace those defaults. Explicit flags win over
the preset; `--help` shows every flag's default and each preset's value for it.
"""

from __future__ import annotations

import argparse
import json
import os

from tl.checkpoint import latest_checkpoint, load_checkpoint
from tl.dist import DistInfo


def add_run_args(p: argparse.ArgumentParser) -> None:
    """The flags both trainers share: seed, device, precision, and the run directory's checkpoints."""
    p.add_argument("--grad_clip", type=float, default=1.0, help="gradient norm clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="None: cuda when available, else cpu"
    )
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 compute, fp32 master weights (None: on CUDA, and on CPUs with native bf16)",
    )
    p.add_argument(
        "--activation_checkpointing",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="recompute each block's activations in the backward pass (memory for time)",
    )
    p.add_argument(
        "--reshard_after_forward",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="under torchrun: free each block's gathered weights after its forward and gather them "
        "again for its backward (memory); off: one all-gather per block and step (time)",
    )
    p.add_argument("--save_every", type=int, default=0, help="checkpoint every N steps (0: only at the end)")
    p.add_argument("--keep", type=int, default=2, help="checkpoints kept")
    p.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in OUT/checkpoints"
    )
    p.add_argument(
        "--export_dtype",
        choices=("float32", "bfloat16"),
        default=None,
        help="dtype of the HF export (None: float32)",
    )


def parse_with_presets(
    p: argparse.ArgumentParser, presets: dict[str, dict], argv, default_preset
) -> argparse.Namespace:
    """Parse `argv` with the chosen preset's values as the defaults. `default_preset(args) -> name
    or None` picks the preset when `--preset` is not given (e.g. the demo when no model is)."""
    for action in p._actions:  # every preset value shows in --help, beside the default
        values = [
            f"{name}: {preset[action.dest]}" for name, preset in presets.items() if action.dest in preset
        ]
        if values and action.help != argparse.SUPPRESS:
            action.help = f"{action.help or ''} [default: {action.default}; {'; '.join(values)}]".strip()
    first, _ = p.parse_known_args(argv)
    name = first.preset or default_preset(first)
    p.set_defaults(**presets.get(name, {}))
    args = p.parse_args(argv)
    args.preset = name
    return args


def save_args(args: argparse.Namespace, info: DistInfo) -> None:
    """Write the resolved settings to OUT/args.json (rank 0), so a run says what it ran with."""
    if info.is_main:
        os.makedirs(args.out, exist_ok=True)
        settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
        with open(os.path.join(args.out, "args.json"), "w") as f:
            json.dump(settings, f, indent=2, sort_keys=True, default=str)
            f.write("\n")


def resume(args, info: DistInfo, models: dict, optimizers: dict, run: dict, log) -> tuple[int, dict]:
    """(first step, meta): with `args.resume` the newest checkpoint in OUT/checkpoints is loaded
    (refused when its `run` settings differ); OUT/metrics.jsonl keeps the lines up to that step."""
    ckpt_dir = os.path.join(args.out, "checkpoints")
    metrics = os.path.join(args.out, "metrics.jsonl")
    start, meta = 0, {}
    path = latest_checkpoint(ckpt_dir) if args.resume else None
    if path:
        meta = load_checkpoint(path, info, models, optimizers)
        changed = {k: (meta["run"].get(k), v) for k, v in run.items() if meta["run"].get(k) != v}
        if changed:
            raise SystemExit(
                f"--resume: {path} was written with other settings {changed} (saved, now); "
                f"an exact continuation needs the same ones"
            )
        start = meta["step"]
        log(f"resumed from {path} at step {start}")
    elif args.resume:
        log(f"--resume: no checkpoint in {ckpt_dir}, starting from step 0")

    if info.is_main:
        os.makedirs(args.out, exist_ok=True)
        kept = []
        if start and os.path.exists(metrics):
            with open(metrics) as f:
                kept = [line for line in f if json.loads(line)["step"] <= start]
        with open(metrics, "w") as f:
            f.writelines(kept)
    return start, meta


def log_metrics(args, info: DistInfo, record: dict) -> None:
    if info.is_main:
        with open(os.path.join(args.out, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(args) -> list[dict]:
    with open(os.path.join(args.out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]
