"""The synthetic generator's held-out split (`python -m tasks.synth`).

`heldout_single.jsonl`: `{"id", "tools", "messages" (before the target call), "gold": {"name",
"arguments"}}` -> Items, mode "strict" (the toolbox's values are exact), category = the gold tool;
`heldout_multi.jsonl`: `{"id", "tools", "query", "reference", "answer"}` -> Tasks, run in the real
Sandbox over the offline toolbox (`tasks.toolbox`), category = the number of reference calls.
"""

from __future__ import annotations

from pathlib import Path

from tasks.base import (
    BenchmarkError,
    Item,
    Loaded,
    Task,
    call_of,
    read_jsonl_lines,
    record_ids,
    require,
    tools_of,
)
from tl.calls import render_prompt

SINGLE = "heldout_single.jsonl"
MULTI = "heldout_multi.jsonl"


def _single(where, rec, item_id, name):
    gold = call_of(require(rec, "gold", dict, where), f"{where}: gold")
    tools = tools_of(require(rec, "tools", list, where), where)
    messages = require(rec, "messages", list, where)
    try:  # rendered here, so that a malformed message is reported as this file's, not at generation
        render_prompt(tools, messages)
    except ValueError as e:
        raise BenchmarkError(f"{where}: messages: {e}") from None
    return Item(item_id, name, tools, messages, [gold], "strict", gold.name)


def _multi(where, rec, task_id, name):
    reference = rec.get("reference", [])
    if not isinstance(reference, list):
        raise BenchmarkError(
            f"{where}: key 'reference' should be a list of calls, found {type(reference).__name__}"
        )
    return Task(
        task_id,
        name,
        tools_of(require(rec, "tools", list, where), where),
        require(rec, "query", str, where),
        f"{len(reference)} calls",
        {"reference": reference, "answer": rec.get("answer")},
    )


def load_file(path) -> Loaded:
    """One held-out file: multi-turn Tasks if it is named MULTI, else single-turn Items."""
    wheres, records = zip(*read_jsonl_lines(path))
    if Path(path).name == MULTI:
        name, make = "synthetic/multi", _multi
    else:
        name, make = "synthetic/single", _single
    ids = record_ids(records, path, wheres)
    return Loaded(name, [make(w, r, i, name) for w, r, i in zip(wheres, records, ids)])


def load(path) -> list[Loaded]:
    """The held-out files in a directory (single-turn and/or multi-turn), or one of them."""
    path = Path(path)
    if path.is_file():
        return [load_file(path)]
    # exists(), not is_file(): a directory under one of these names is reported, not passed over
    units = [load_file(path / f) for f in (SINGLE, MULTI) if (path / f).exists()]
    if not units:
        raise BenchmarkError(
            f"{path}: no synthetic held-out files found (expected {SINGLE} and/or {MULTI}; "
            f"write them with `python -m tasks.synth --out {path}/train.jsonl`)"
        )
    return units
