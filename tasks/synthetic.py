"""The synthetic generator's held-out split (`python -m tasks.synth`, see tl/synth.py).

- `heldout_single.jsonl`: `{"id", "tools", "messages" (history before the target call), "gold":
  {"name", "arguments"}}` -> Items, mode "strict" (JSON equality; the toolbox's values are exact),
  category = the gold tool's name;
- `heldout_multi.jsonl`: `{"id", "tools", "query", "reference", "answer"}` -> Tasks, run in the
  real Sandbox over the offline toolbox (`tasks.toolbox`).
"""

from __future__ import annotations

from pathlib import Path

from tasks.base import BenchmarkError, Item, Loaded, Task, call_of, read_jsonl_lines, record_ids, require, tools_of
from tl.calls import render_prompt

SINGLE, MULTI = "heldout_single.jsonl", "heldout_multi.jsonl"


def _tools(rec, where):
    return tools_of(require(rec, "tools", list, where), where)


def load_single(path, name: str = "synthetic/single") -> Loaded:
    """`heldout_single.jsonl` -> Items."""
    wheres, records = zip(*read_jsonl_lines(path))
    items = []
    for where, rec, item_id in zip(wheres, records, record_ids(records, path, wheres=wheres)):
        gold = call_of(require(rec, "gold", dict, where), f"{where}: gold")
        tools, messages = _tools(rec, where), require(rec, "messages", list, where)
        try:  # rendered here, so that a malformed message is reported as this file's, not at generation
            render_prompt(tools, messages)
        except ValueError as e:
            raise BenchmarkError(f"{where}: messages: {e}") from None
        items.append(Item(item_id, name, tools, messages, [gold], "strict", gold.name))
    return Loaded(name, items)


def load_multi(path, name: str = "synthetic/multi") -> Loaded:
    """`heldout_multi.jsonl` -> Tasks (category = the number of reference calls)."""
    wheres, records = zip(*read_jsonl_lines(path))
    tasks = []
    for where, rec, task_id in zip(wheres, records, record_ids(records, path, wheres=wheres)):
        reference = rec.get("reference", [])
        if not isinstance(reference, list):
            raise BenchmarkError(f"{where}: key 'reference' should be a list of calls, found {type(reference).__name__}")
        tasks.append(Task(task_id, name, _tools(rec, where), require(rec, "query", str, where),
                          f"{len(reference)} calls", {"reference": reference, "answer": rec.get("answer")}))
    return Loaded(name, tasks)


def load(path) -> list[Loaded]:
    """The held-out files in a directory (or one of them): single-turn and/or multi-turn."""
    path = Path(path)
    if path.is_file():
        return [load_multi(path) if path.name == MULTI else load_single(path)]
    # exists(), not is_file(): a directory under one of these names is reported, not passed over
    units = [load_single(path / SINGLE)] if (path / SINGLE).exists() else []
    units += [load_multi(path / MULTI)] if (path / MULTI).exists() else []
    if not units:
        raise BenchmarkError(f"{path}: no synthetic held-out files found (expected {SINGLE} and/or {MULTI}; "
                             f"write them with `python -m tasks.synth --out {path}/train.jsonl`)")
    return units
