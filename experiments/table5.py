"""Paper Table 5 (the ablation) at CPU scale, with seeds and error bars.

    python experiments/table5.py --seeds 3            # ~70 min on 2 CPU cores (7 rows x 3 seeds)
    python experiments/table5.py --quick              # 1 seed, a few steps: checks the wiring

Rows: SFT with none of the components, with MAE, with PKT, with MAE + PKT; PPO with the
error-category reward on SFT-none ("w/ IRM") and on SFT MAE + PKT ("w/ All"), and multi-turn PPO
(`train_ppo.py --multi_turn`) on SFT-none ("w/ IRM multi-turn"). Every run trains
from the demo presets of train_sft.py / train_ppo.py on the demo's synthetic data (tasks/synth.py,
train_sft.DEMO_TRAJECTORIES trajectories; fixed before any result, docs/MEASUREMENTS.md) with its own
seed, and is evaluated
greedily on the held-out splits. Reported per row: TS / PI / CF (single turn), DE / CE / VA
(multi-turn), and the diagnostic of each component:
- MAE: % of single-turn predictions that repeat a mistake of a kind planted in the training
  data (`tasks.synth.planted_kind`);
- PKT: % of predictions naming a wrong tool, and the share of those whose name shares a
  prefix with the right one (paper Table 1);
- IRM: the mean reward R(t) of the held-out predictions, and CF before and after PPO.
Writes OUT/table5.md (mean ± sd per row; each row's difference from "none" with the standard
error of the per-seed differences), OUT/table5.json (every run's numbers) and, when matplotlib
is installed, OUT/table5.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import evaluate  # noqa: E402
import train_ppo  # noqa: E402
import train_sft  # noqa: E402
from tasks.synth import planted_kind, write_splits  # noqa: E402
from tl.calls import Call  # noqa: E402
from tl.classify import Classification, call_reward  # noqa: E402
from tl.parse import parse  # noqa: E402

SFT_ROWS = {"none": ["--no-mae", "--no-pkt"], "MAE": ["--no-pkt"], "PKT": ["--no-mae"], "MAE+PKT": []}
# row -> (the SFT row it starts from, extra flags); multi-turn: as many steps (40) as the demo's
# single-turn PPO, each over 16 fresh tasks (episodes of up to 4 outputs in the sandbox)
PPO_ROWS = {
    "w/ IRM": ("none", []),
    "w/ All": ("MAE+PKT", []),
    "w/ IRM multi-turn": ("none", ["--multi_turn", "--max_steps", "40"]),
}
COLUMNS = ("TS", "PI", "CF", "DE", "CE", "VA", "planted", "wrong_tool", "prefix_share", "reward")
QUICK_SFT = [
    "--max_steps",
    "3",
    "--hidden_size",
    "32",
    "--num_layers",
    "1",
    "--num_heads",
    "2",
    "--vocab_size",
    "400",
]
QUICK_PPO = ["--max_steps", "1", "--batch_size", "2", "--micro_batch", "1", "--max_new_tokens", "8"]


def diagnostics(folder: Path, gold: dict) -> dict:
    """MAE, PKT and IRM diagnostics from an evaluation's single-turn items.jsonl."""
    items = [json.loads(line) for line in open(folder / "items.jsonl")]
    planted = rewards = 0
    for r in items:
        calls = parse(r["output"]).calls
        planted += bool(calls) and planted_kind(calls[0], gold[r["id"]]) is not None
        rewards += call_reward(Classification(r["category"], r["details"]))
    errors = json.loads((folder / "metrics.json").read_text())["errors"]
    return {
        "planted": 100 * planted / len(items),
        "wrong_tool": errors["categories"]["wrong_tool"]["percent"],
        "prefix_share": errors["wrong_tool"]["shares_prefix"],
        "reward": rewards / len(items),
    }


def evaluate_run(model: Path, data: Path, out: Path, gold: dict, limit: list[str]) -> dict:
    summary = evaluate.main(["--model", str(model), "--data", str(data), "--out", str(out), *limit])
    numbers = {**summary["synthetic/single"], **summary["synthetic/multi"]}
    return {k: numbers[k] for k in ("TS", "PI", "CF", "DE", "CE", "VA")} | diagnostics(
        out / "synthetic" / "single", gold
    )


def run_job(task) -> dict:
    """Train one row's run (unless its export exists) and evaluate it; output to RUN/log.txt."""
    (kind, _row, _seed, run, flags), data, gold, limit, single_thread = task
    if single_thread:
        torch.set_num_threads(1)
    run.mkdir(parents=True, exist_ok=True)
    with open(run / "log.txt", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        if not (run / "model" / "config.json").is_file():
            (train_sft if kind == "sft" else train_ppo).main([*flags, "--out", str(run)])
        return evaluate_run(run / "model", data, run / "eval", gold, limit)


def mean_sd(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, (math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0)


def table(runs: dict, seeds: list[int]) -> str:
    """Markdown: mean ± sd per row and column; below each row but "none", its paired difference
    from "none" (mean of the per-seed differences ± their standard error)."""
    lines = ["| row | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for row, per_seed in runs.items():
        cells = [
            f"{m:.2f} ± {sd:.2f}" for m, sd in (mean_sd([per_seed[s][c] for s in seeds]) for c in COLUMNS)
        ]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
        if row != "none":
            diffs = [mean_sd([per_seed[s][c] - runs["none"][s][c] for s in seeds]) for c in COLUMNS]
            lines.append(
                f"| Δ {row} − none | "
                + " | ".join(f"{m:+.2f} ± {sd / math.sqrt(len(seeds)):.2f}" for m, sd in diffs)
                + " |"
            )
    return "\n".join(lines)


def chart(runs: dict, seeds: list[int], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    metrics = ("TS", "PI", "CF", "CE", "VA", "planted")
    fig, axes = plt.subplots(1, len(metrics), figsize=(3 * len(metrics), 3.2))
    for ax, metric in zip(axes, metrics):
        stats = [mean_sd([runs[row][s][metric] for s in seeds]) for row in runs]
        ax.bar(range(len(runs)), [m for m, _ in stats], yerr=[sd for _, sd in stats], capsize=3)
        ax.set_xticks(range(len(runs)), list(runs), rotation=60, fontsize=7)
        ax.set_title(metric)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="out/table5")
    p.add_argument(
        "--jobs", type=int, default=2, help="runs side by side, one thread each (1: in this process)"
    )
    p.add_argument(
        "--quick", action="store_true", help="1 seed, a few steps on a little data: the wiring only"
    )
    args = p.parse_args(argv)
    out, t0 = Path(args.out), time.time()
    seeds = [0] if args.quick else list(range(args.seeds))
    data = out / "data"
    if not (data / "train.jsonl").is_file():
        sizes = (
            dict(n=40, heldout_single=6, heldout_multi=3)
            if args.quick
            else dict(n=train_sft.DEMO_TRAJECTORIES)
        )
        write_splits(str(data / "train.jsonl"), **sizes)
    gold = {
        json.loads(line)["id"]: Call.from_dict(json.loads(line)["gold"])
        for line in open(data / "heldout_single.jsonl")
    }
    sft_extra, ppo_extra = (QUICK_SFT, QUICK_PPO) if args.quick else ([], [])
    limit = ["--max_new_tokens", "8", "--max_turns", "2"] if args.quick else []
    results_file = out / "table5.json"
    done = json.loads(results_file.read_text())["runs"] if results_file.is_file() else {}
    sft_jobs = [
        (
            "sft",
            row,
            seed,
            out / f"sft_{row.replace('+', '_')}_{seed}",
            ["--data", str(data / "train.jsonl"), "--seed", str(seed), *flags, *sft_extra],
        )
        for seed in seeds
        for row, flags in SFT_ROWS.items()
    ]
    ppo_jobs = [
        (
            "ppo",
            row,
            seed,
            out / f"ppo_{row[3:].replace(' ', '_')}_{seed}",
            [
                "--preset",
                "demo",
                "--sft",
                str(out / f"sft_{base.replace('+', '_')}_{seed}" / "model"),
                "--data",
                str(data / "train.jsonl"),
                "--seed",
                str(seed),
                *flags,
                *ppo_extra,
            ],
        )
        for seed in seeds
        for row, (base, flags) in PPO_ROWS.items()
    ]
    for jobs in (sft_jobs, ppo_jobs):  # PPO starts from the SFT exports
        todo = [(j, data, gold, limit, args.jobs > 1) for j in jobs if str(j[2]) not in done.get(j[1], {})]
        if args.jobs > 1:  # independent single-threaded runs side by side: ~2x one run on 2 threads
            with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
                results = pool.map(run_job, todo, chunksize=1)
        else:
            results = [run_job(t) for t in todo]
        for (job, *_), numbers in zip(todo, results):
            if job[1] in PPO_ROWS:
                numbers["CF_before"] = done[PPO_ROWS[job[1]][0]][str(job[2])]["CF"]
            done.setdefault(job[1], {})[str(job[2])] = numbers
        results_file.write_text(json.dumps({"seeds": seeds, "runs": done}, indent=2) + "\n")  # resumable
    runs = {row: {seed: done[row][str(seed)] for seed in seeds} for row in [*SFT_ROWS, *PPO_ROWS]}
    text = table(runs, seeds)
    minutes = (time.time() - t0) / 60
    (out / "table5.md").write_text(f"{text}\n\n{len(seeds)} seed(s), {minutes:.1f} min\n")
    drew = chart(runs, seeds, out / "table5.png")
    print(
        f"{text}\n\n{out / 'table5.md'}, {results_file}"
        + (f", {out / 'table5.png'}" if drew else "")
        + f" ({len(seeds)} seed(s), {minutes:.1f} min)"
    )
    return runs


if __name__ == "__main__":
    main()
