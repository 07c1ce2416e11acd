"""Synthetic tool-use trajectories with real tool feedback: the demo's training data.

    python -m tasks.synth --n 1217 --seed 0 --out out/data/train.jsonl \\
        [--error_share 0.17] [--heldout_single 300] [--heldout_multi 100] \\
        [--no_tool_share 0] [--parallel_share 0]

writes `--out` (`{"id", "tools", "messages"}`, tool messages carrying the feedback text and the
sandbox's `result`) and, next to it, the held-out splits `heldout_single.jsonl` and
`heldout_multi.jsonl` (formats: tasks.synthetic). Tasks come from `tasks.toolbox.templates` and
every call is really executed (toolbox functions in-process, `run_python` in a Sandbox). Exactly
round(n * error_share) training records hold one realistic mistake (FLAW_KINDS) before one of
their calls, then its real error feedback and the corrected call. Optionally (the pretrained
recipe's data) a share of queries that no offered tool answers, answered in words, and a share of
parallel turns (two calls at once). Held-out queries never occur in
the training file. Every record draws from its own `random.Random` seeded by a string, so the same
arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from contextlib import closing

from tasks.toolbox import TOOLS
from tasks.toolbox.templates import TASKS
from tl.calls import Call
from tl.classify import TOOL_INSTABILITY, classify_feedback
from tl.episode import Result
from tl.sandbox import Sandbox, run_in_process

FLAW_KINDS = ("param_hallucination", "param_missing", "wrong_tool", "tool_hallucination", "bad_value")
MAX_TOOLS = 3  # tools offered per record: short prompts, where a small model learns to copy values sooner


class _Executor:
    """Toolbox calls in-process; run_python (model-style code) in a Sandbox started on first use."""

    sandbox = None

    def run(self, call: Call) -> Result:
        if call.name != "run_python":
            return run_in_process(TOOLS, call)
        if self.sandbox is None:
            self.sandbox = Sandbox({"run_python": TOOLS["run_python"]}, workers=1, timeout=10.0)
        for _ in range(3):  # a timeout on an overloaded machine must not change the data
            result = self.sandbox.run(call)
            if result.category != TOOL_INSTABILITY:
                break
        return result

    def close(self):
        if self.sandbox is not None:
            self.sandbox.close()


# ----------------------------------------------------------------------------- mistakes
_EXTRA_KEYS = {
    "units": "metric",
    "format": "json",
    "language": "en",
    "country": "France",
    "precision": 2,
    "verbose": True,
    "region": "Europe",
    "timezone": "UTC",
}
_CURRENCY_WORDS = {
    "USD": "dollars",
    "EUR": "euro",
    "GBP": "pounds",
    "JPY": "yen",
    "INR": "rupees",
    "CNY": "yuan",
}
_UNIT_WORDS = {
    "km": "kilometers",
    "mi": "miles",
    "m": "meters",
    "ft": "feet",
    "kg": "kilograms",
    "lb": "pounds",
    "c": "celsius",
    "f": "fahrenheit",
    "l": "liters",
    "gal": "gallons",
    "g": "grams",
    "oz": "ounces",
}


def _misspellings(word: str) -> list[str]:
    """A letter dropped (not the first) or the last one doubled: "Pariss", "Pars"."""
    return [word[:i] + word[i + 1 :] for i in range(1, len(word))] + [word + word[-1]]


def _currency_as_word(code: str) -> list[str]:
    """ "EUR" -> ["euro"]; an unknown code -> its lower-case plural."""
    return [_CURRENCY_WORDS.get(code, code.lower() + "s")]


def _unit_as_word(unit: str) -> list[str]:
    """ "km" -> ["kilometers"]; an unknown unit -> its plural."""
    return [_UNIT_WORDS.get(unit, unit + "s")]


def _other_date_formats(date: str) -> list[str]:
    """ "2025-01-15" -> ["15/01/2025", "01/15/2025", "2025.01.15"]."""
    return [f.format(*date.split("-")) for f in ("{2}/{1}/{0}", "{1}/{2}/{0}", "{0}.{1}.{2}")]


def _twelve_hour(time: str) -> list[str]:
    """ "14:30" -> ["2pm"]: the 12-hour clock, minutes dropped."""
    hour = int(time[:2])
    return [f"{hour % 12 or 12}{'am' if hour < 12 else 'pm'}"]


# argument -> the realistic wrong values of its value that the generator plants
_BAD_VALUES = {
    **dict.fromkeys(("city", "from_city", "to_city", "city_a", "city_b", "country"), _misspellings),
    **dict.fromkeys(("from_currency", "to_currency"), _currency_as_word),
    **dict.fromkeys(("from_unit", "to_unit", "unit"), _unit_as_word),
    **dict.fromkeys(("date", "start_date", "end_date"), _other_date_formats),
    "time": _twelve_hour,
    "expression": lambda v: [v.replace("*", " times ").replace("+", " plus ")],
    "char": lambda v: [v * 2],
}


def _bad_values(key: str, value) -> list:
    """Every wrong value of one argument that the generator plants ([] when any value would do)."""
    if key in _BAD_VALUES:
        return _BAD_VALUES[key](value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]  # a number written as a string: a wrong type
    if isinstance(value, list):
        return [", ".join(map(str, value))]  # a list written as one string
    return []


def _prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def _siblings(name: str) -> list[str]:
    """The toolbox tools whose names share at least 4 characters of prefix with `name` (up to 4)."""
    ranked = sorted((-_prefix(n, name), n) for n in TOOLS if n != name)  # longest prefix first, then by name
    return [n for negated_prefix, n in ranked if -negated_prefix >= 4][:4]


def _made_up_names(name: str) -> list[str]:
    """Plausible tool names the toolbox does not have: `get_weather` for `get_weather_current`, ..."""
    parts = name.split("_")
    names = [
        "_".join(parts[:-1]),
        "_".join([parts[0], parts[-1]] + parts[1:-1]),
        "fetch_" + "_".join(parts[1:]),
        "get_" + name,
        name.replace("_", ""),
        name + "s",
    ]
    return [n for n in names if n and n != name and n not in TOOLS and "_" in n.strip("_")]


def _flawed_call(kind: str, call: Call, rng) -> Call | None:
    """A mistaken version of `call` of the given kind, or None if the kind does not apply."""
    schema = TOOLS[call.name].schema["parameters"]
    if kind == "param_hallucination":
        key = rng.choice([k for k in _EXTRA_KEYS if k not in schema["properties"]])
        return Call(call.name, {**call.arguments, key: _EXTRA_KEYS[key]})
    if kind == "param_missing":
        present = [k for k in schema["required"] if k in call.arguments]
        if not present:
            return None
        drop = rng.choice(present)
        return Call(call.name, {k: v for k, v in call.arguments.items() if k != drop})
    if kind in ("wrong_tool", "tool_hallucination"):
        names = _siblings(call.name) if kind == "wrong_tool" else _made_up_names(call.name)
        return Call(rng.choice(names), dict(call.arguments)) if names else None
    bad = {k: _bad_values(k, v) for k, v in call.arguments.items()}
    keys = [k for k, v in bad.items() if v]
    if not keys:
        return None
    key = rng.choice(keys)
    return Call(call.name, {**call.arguments, key: rng.choice(bad[key])})


def planted_kind(pred: Call, gold: Call) -> str | None:
    """Which of the FLAW_KINDS the training data plants `pred` repeats against the clean `gold`
    call, or None: the MAE diagnostic (does the model reproduce the masked mistakes?)."""
    if pred.name != gold.name:
        if pred.name in _siblings(gold.name):
            return "wrong_tool"
        if pred.name in _made_up_names(gold.name):
            return "tool_hallucination"
        return None
    if gold.name not in TOOLS:
        return None
    props = TOOLS[gold.name].schema["parameters"]["properties"]
    if any(k in _EXTRA_KEYS and k not in props for k in pred.arguments):
        return "param_hallucination"
    if any(k not in pred.arguments for k in gold.arguments):
        return "param_missing"
    for k, v in gold.arguments.items():
        predicted = pred.arguments.get(k)
        if k in pred.arguments and predicted != v and predicted in _bad_values(k, v):
            return "bad_value"
    return None


def _mistake(call: Call, rng, executor) -> tuple[Call, Result, str] | None:
    """Try the mistake kinds in a random order until one really fails, with feedback that MAE
    reads as the same category the sandbox reports."""
    for kind in rng.sample(FLAW_KINDS, len(FLAW_KINDS)):
        flawed = _flawed_call(kind, call, rng)
        if flawed is None:
            continue
        result = executor.run(flawed)
        if not result.ok and classify_feedback(result.feedback) == result.category:
            return flawed, result, kind
    return None


# ----------------------------------------------------------------------------- records
def _offered_tools(needed: list[str], rng) -> list[dict]:
    """The needed tools plus 1-3 distractors (at most MAX_TOOLS in all), mostly prefix-sharing,
    shuffled."""
    # the other tools, the longest prefix shared with a needed one first
    others = sorted((-max(_prefix(n, m) for m in needed), n) for n in TOOLS if n not in needed)
    # distractors: the 5 closest names and 2 random others
    pool = [n for _, n in others[:5]] + rng.sample([n for _, n in others[5:]], 2)
    n_distractors = min(rng.randint(1, 3), max(0, MAX_TOOLS - len(needed)))
    names = needed + rng.sample(pool, n_distractors)
    rng.shuffle(names)
    return [TOOLS[n].schema for n in names]


def _trajectory(rng, executor, flawed: bool) -> tuple[dict, str, list[Call], str]:
    """One record (without id), its query, its reference calls and its answer."""
    query, steps, answer = rng.choice(TASKS).play(rng, executor.run)
    mistake = None
    if flawed:
        for at in rng.sample(range(len(steps)), len(steps)):
            mistake = _mistake(steps[at][0], rng, executor)
            if mistake is not None:
                break
        if mistake is None:
            return _trajectory(rng, executor, flawed)  # this task offers no mistake: draw another
    needed = list(dict.fromkeys(c.name for c, _ in steps))  # the tools the steps call, once each
    shown = steps
    if mistake is not None:
        flawed_call, flawed_result, kind = mistake
        if kind == "wrong_tool":
            needed.append(flawed_call.name)  # a wrong tool is one the model was offered
        # the mistake and its error feedback come right before the step it got wrong
        shown = steps[:at] + [(flawed_call, flawed_result)] + steps[at:]
    messages = [{"role": "user", "content": query}]
    for call, result in shown:
        messages += [
            {"role": "assistant", "tool_call": call.to_dict()},
            {"role": "tool", "content": result.feedback, "result": result.to_dict()},
        ]
    messages.append({"role": "assistant", "content": answer})
    record = {"tools": _offered_tools(needed, rng), "messages": messages}
    reference = [c for c, _ in steps]
    return record, query, reference, answer


def _no_tool_trajectory(rng, executor) -> dict:
    """A query that none of the offered tools can answer, answered in words without a call: what
    BFCL's irrelevance category tests. The offered tools share no name prefix with the ones the
    query needs, and never include run_python (which could answer almost anything)."""
    query, steps, _ = rng.choice(TASKS).play(rng, executor.run)
    needed = {call.name for call, _ in steps}
    unrelated = sorted(
        n
        for n in TOOLS
        if n != "run_python" and all(_prefix(n, m) < 4 and n.split("_")[0] != m.split("_")[0] for m in needed)
    )
    names = rng.sample(unrelated, rng.randint(1, MAX_TOOLS))
    answer = rng.choice(NO_TOOL_ANSWERS).format(tools=", ".join(names))
    messages = [{"role": "user", "content": query}, {"role": "assistant", "content": answer}]
    return {"tools": [TOOLS[n].schema for n in names], "messages": messages}


def _parallel_trajectory(rng, executor) -> dict:
    """Two independent one-call questions in one query, answered by one turn of two calls (the
    list `[f(...), g(...)]`), then both feedbacks: BFCL's parallel (same tool) and
    parallel-multiple (two tools) categories."""
    single_call = [t for t in TASKS if len(t.calls) == 1 and t.name != "python_snippet"]
    first = rng.choice(single_call)
    second = first if rng.random() < 0.5 else rng.choice(single_call)
    query_a, steps_a, answer_a = first.play(rng, executor.run)
    query_b, steps_b, answer_b = second.play(rng, executor.run)
    if steps_a[0][0] == steps_b[0][0]:
        return _parallel_trajectory(rng, executor)  # the same call twice: draw again
    steps = steps_a + steps_b
    messages = [
        {"role": "user", "content": f"{query_a} {rng.choice(PARALLEL_JOINS)} {query_b}"},
        {"role": "assistant", "tool_calls": [call.to_dict() for call, _ in steps]},
    ]
    for _, result in steps:
        messages.append({"role": "tool", "content": result.feedback, "result": result.to_dict()})
    messages.append({"role": "assistant", "content": f"{answer_a} {answer_b}"})
    needed = list(dict.fromkeys(call.name for call, _ in steps))
    return {"tools": _offered_tools(needed, rng), "messages": messages}


# The wording of a no-tool answer, and how two questions are joined in one parallel query.
NO_TOOL_ANSWERS = (
    "None of the available tools ({tools}) can answer this, so I cannot look it up.",
    "I can't help with that using the tools I have ({tools}).",
    "The tools available here ({tools}) don't cover this question.",
    "Sorry, no available tool can answer that; I only have {tools}.",
)
PARALLEL_JOINS = ("Also,", "And", "Plus:", "Second question:")


def generate(
    n: int, seed: int = 0, error_share: float = 0.17, no_tool_share: float = 0.0, parallel_share: float = 0.0
) -> list[dict]:
    """`n` training records; exactly round(n * error_share) of them hold one mistake, and of the
    others round(n * no_tool_share) need no tool and round(n * parallel_share) make one parallel
    turn (both 0 in the demo's data)."""
    for name, share in (
        ("error_share", error_share),
        ("no_tool_share", no_tool_share),
        ("parallel_share", parallel_share),
    ):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be in [0, 1]; found {share}")
    flawed = set(random.Random(f"{seed}:flawed").sample(range(n), round(n * error_share)))
    clean = [i for i in range(n) if i not in flawed]
    n_no_tool, n_parallel = round(n * no_tool_share), round(n * parallel_share)
    if n_no_tool + n_parallel > len(clean):
        raise ValueError(
            f"error, no-tool and parallel shares add up to more than 1: {n_no_tool + n_parallel + len(flawed)} of {n}"
        )
    special = (
        random.Random(f"{seed}:special").sample(clean, n_no_tool + n_parallel)
        if n_no_tool + n_parallel
        else []
    )
    no_tool, parallel = set(special[:n_no_tool]), set(special[n_no_tool:])
    records = []
    with closing(_Executor()) as executor:
        for i in range(n):
            rng = random.Random(f"{seed}:train:{i}")
            if i in no_tool:
                record = _no_tool_trajectory(rng, executor)
            elif i in parallel:
                record = _parallel_trajectory(rng, executor)
            else:
                record = _trajectory(rng, executor, i in flawed)[0]
            records.append({"id": f"synth-{i:05d}", **record})
    return records


def generate_heldout(n_single: int, n_multi: int, seed: int = 0, exclude_queries=()) -> tuple[list, list]:
    """Clean held-out items: single-turn (history before one gold call) and multi-turn tasks.
    Queries in `exclude_queries` (the training set's) are skipped."""
    seen = set(exclude_queries)
    singles = []
    multis = []
    k = 0  # the next record's seed index
    with closing(_Executor()) as executor:
        while len(singles) < n_single or len(multis) < n_multi:
            rng = random.Random(f"{seed}:heldout:{k}")
            k += 1
            record, query, reference, answer = _trajectory(rng, executor, flawed=False)
            if query in seen:
                continue
            seen.add(query)
            tools = record["tools"]
            messages = record["messages"]
            if len(singles) < n_single:
                # the gold is one of the record's calls, at random; the messages before it are the history
                at = rng.choice([i for i, m in enumerate(messages) if "tool_call" in m])
                singles.append(
                    {
                        "id": f"single-{len(singles):05d}",
                        "tools": tools,
                        "messages": messages[:at],
                        "gold": messages[at]["tool_call"],
                    }
                )
            else:
                multis.append(
                    {
                        "id": f"multi-{len(multis):05d}",
                        "tools": tools,
                        "query": query,
                        "reference": [c.to_dict() for c in reference],
                        "answer": answer,
                    }
                )
    return singles, multis


# The synthetic data sets the presets train on, by path (write_splits settings): generated by
# train_sft.py / train_ppo.py when missing. The demo's: more than the paper's 1,217, as the generator
# is free and varied values make copying pay off. The pretrained recipe's: 160 steps of 8 (what 20
# minutes hold), with queries no offered tool answers and parallel turns, which the benchmarks test;
# its PPO prompts come from another seed's file, which SFT never saw (docs/MEASUREMENTS.md, "Pretrained").
DEMO_DATA = "out/data/train.jsonl"
SMOL_DATA = "out/smol/data/train.jsonl"
SMOL_PPO_DATA = "out/smol/ppo_data/train.jsonl"
PRESET_DATA = {
    DEMO_DATA: dict(n=8000),
    SMOL_DATA: dict(n=1280, no_tool_share=0.1, parallel_share=0.1),
    SMOL_PPO_DATA: dict(
        n=800, seed=2, heldout_single=0, heldout_multi=0, no_tool_share=0.1, parallel_share=0.1
    ),
}


def write_preset_data(path: str, log=print) -> None:
    """Write a preset's data set (PRESET_DATA) if `path` is one and does not exist yet."""
    settings = PRESET_DATA.get(path)
    if settings is None or os.path.exists(path):
        return
    log(f"{path} not found: generating the synthetic data (python -m tasks.synth)", flush=True)
    paths = write_splits(path, **settings)
    log("  wrote " + ", ".join(paths.values()))


def write_jsonl(path: str, records) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_splits(
    out: str,
    n: int = 1217,
    seed: int = 0,
    error_share: float = 0.17,
    heldout_single: int = 300,
    heldout_multi: int = 100,
    no_tool_share: float = 0.0,
    parallel_share: float = 0.0,
) -> dict:
    """Write the training file to `out` and the held-out splits next to it; return their paths."""
    train = generate(n, seed, error_share, no_tool_share, parallel_share)
    paths = {"train": out}
    write_jsonl(out, train)
    if heldout_single or heldout_multi:
        queries = [r["messages"][0]["content"] for r in train]
        singles, multis = generate_heldout(heldout_single, heldout_multi, seed, queries)
        folder = os.path.dirname(os.path.abspath(out))
        for name, records in (("heldout_single", singles), ("heldout_multi", multis)):
            if records:
                paths[name] = os.path.join(folder, f"{name}.jsonl")
                write_jsonl(paths[name], records)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m tasks.synth",
        description="Synthetic tool-use trajectories with real "
        "tool feedback (held-out splits are written next to --out).",
    )
    ap.add_argument("--n", type=int, default=1217, help="training trajectories (paper: 1,217)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/data/train.jsonl")
    ap.add_argument(
        "--error_share", type=float, default=0.17, help="share of trajectories with a mistake (paper: 17%%)"
    )
    ap.add_argument(
        "--heldout_single", type=int, default=300, help="single-turn items -> heldout_single.jsonl"
    )
    ap.add_argument("--heldout_multi", type=int, default=100, help="multi-turn tasks -> heldout_multi.jsonl")
    ap.add_argument(
        "--no_tool_share",
        type=float,
        default=0.0,
        help="share of queries no offered tool answers (answered in words)",
    )
    ap.add_argument(
        "--parallel_share",
        type=float,
        default=0.0,
        help="share of trajectories with one parallel turn of two calls",
    )
    args = ap.parse_args(argv)
    paths = write_splits(
        args.out,
        args.n,
        args.seed,
        args.error_share,
        args.heldout_single,
        args.heldout_multi,
        args.no_tool_share,
        args.parallel_share,
    )
    for name, path in paths.items():
        with open(path, encoding="utf-8") as f:
            print(f"{name}: {sum(1 for _ in f)} records -> {path}")


if __name__ == "__main__":
    main()
