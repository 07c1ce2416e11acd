"""The synthetic generator's held-out split (`python -m tl.synth`, see tl/synth.py).

- `heldout_single.jsonl`: `{"id", "tools", "messages" (history before the target call), "gold":
  {"name", "arguments"}}` -> Items, mode "strict" (JSON equality; the toolbox's values are exact),
  category = the gold tool's name;
- `heldout_multi.jsonl`: `{"id", "tools", "query", "reference", "answer"}` -> Tasks, run in the
  real Sandbox over the offline toolbox (`tl.toolbox`).
"""

from __future__ import annotations

from pathlib import Path

from tl.benchmarks.base import BenchmarkError, Item, Loaded, Task, read_jsonl, record_ids, require
from tl.schema import Call, normalize_tools

SINGLE, MULTI = "heldout_single.jsonl", "heldout_multi.jsonl"


def _tools(rec, where):
    try:
        return normalize_tools(require(rec, "tools", list, where))
    except ValueError as e:
        raise BenchmarkError(f"{where}: {e}") from None


def load_single(path, name: str = "synthetic/single") -> Loaded:
    """`heldout_single.jsonl` -> Items."""
    records = read_jsonl(path)
    ids = record_ids(records, path, first=1)
    items = []
    for k, (rec, item_id) in enumerate(zip(records, ids)):
        where = f"{path}:{k + 1}"
        try:
            gold = Call.from_dict(require(rec, "gold", dict, where))
        except ValueError as e:
            raise BenchmarkError(f"{where}: gold: {e}") from None
        messages = require(rec, "messages", list, where)
        items.append(Item(item_id, name, _tools(rec, where), messages, [gold], "strict", gold.name))
    return Loaded(name, items)


def load_multi(path, name: str = "synthetic/multi") -> Loaded:
    """`heldout_multi.jsonl` -> Tasks (category = the number of reference calls)."""
    records = read_jsonl(path)
    ids = record_ids(records, path, first=1)
    tasks = []
    for k, (rec, task_id) in enumerate(zip(records, ids)):
        where = f"{path}:{k + 1}"
        reference = rec.get("reference", [])
        tasks.append(Task(task_id, name, _tools(rec, where), require(rec, "query", str, where),
                          f"{len(reference)} calls", {"reference": reference, "answer": rec.get("answer")}))
    return Loaded(name, tasks)


def load(path) -> list[Loaded]:
    """The held-out files in a directory (or one of them): single-turn and/or multi-turn."""
    path = Path(path)
    if path.is_file():
        return [load_multi(path) if path.name == MULTI else load_single(path)]
    units = [load_single(path / SINGLE)] if (path / SINGLE).is_file() else []
    units += [load_multi(path / MULTI)] if (path / MULTI).is_file() else []
    if not units:
        raise BenchmarkError(f"{path}: no synthetic held-out files found (expected {SINGLE} and/or {MULTI}; "
                             f"write them with `python -m tl.synth --out {path}/train.jsonl`)")
    return units
