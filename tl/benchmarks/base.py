"""The shared types of the benchmark loaders: `Item`, `Task`, errors, id and file helpers.

Single-turn benchmarks (RoTBench, BFCL-v3, ToolAlpaca, the synthetic held-out split) become
`Item`s: the tools in the project's normal form, the conversation *before* the target call in
the trajectory format (docs/ARCHITECTURE.md), and the gold answer in the form the text layer's
`classify` reads for the item's `mode`. Multi-turn benchmarks (ToolEyes, the synthetic
multi-turn split) become `Task`s: tools and a query, run by the episode runner.

Item ids (README, "Item ids"): the benchmark's own id where it is unique in its file,
`<id>#<k>` (k = 0, 1, ... by order of appearance) where it repeats, `<Name>/<i>` for
ToolAlpaca. Problems with a whole file or record raise `BenchmarkError` naming `file:record`
and the reason; a record the benchmark itself ships broken (e.g. gold JSON that does not parse)
is skipped with a `Skipped` note so that the rest of the file still evaluates.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


class BenchmarkError(ValueError):
    """A benchmark file that does not have the expected shape (message: `file:record: reason`)."""


@dataclass(frozen=True)
class Item:
    """One single-turn test: predict the next assistant call after `messages`.

    tools: in any form `tl.schema.normalize_tools` reads (the normal form, except BFCL's own
    schemas, whose type words its checker reads).
    gold: what `tl.classify` compares against, per `mode`:
      "rotbench" -- a list of acceptable `Call`s (any one may match; RoTBench/ToolAlpaca rules);
      "bfcl"     -- BFCL's `ground_truth` list, one `{name: {param: [acceptable values]}}` per
                    expected call (order-free); `[]` for (live_)irrelevance and live_relevance,
                    whose category says what is right (no call / any call);
      "strict"   -- a list with one `Call` (the synthetic split).
    options: RoTBench's role rules (`unchecked_tools`, `aliases`), passed to classify.
    reader: how the benchmark's own checker reads model text: "project" (tl.parse.parse),
    "rotbench" (tl.benchmarks.rotbench.read_output) or "bfcl" (tl.benchmarks.bfcl.decode).
    """
    id: str
    benchmark: str
    tools: list
    messages: list
    gold: list
    mode: str
    category: str = ""
    options: dict = field(default_factory=dict)  # extra keyword arguments for tl.classify.classify
    reader: str = "project"


@dataclass(frozen=True)
class Task:
    """One multi-turn task: the model works from `query` with `tools` for up to 9 turns."""
    id: str
    benchmark: str
    tools: list
    query: str
    category: str = ""
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A record left out of evaluation because the benchmark file itself is broken there."""
    where: str   # file:record
    reason: str


@dataclass
class Loaded:
    """One evaluation unit (one benchmark file, or BFCL's category files together): its name
    (e.g. "rotbench/First_Turn/clean"), its items or tasks, and the records it had to skip.
    Item ids are unique within a unit; results are reported per unit."""
    name: str
    items: list
    skipped: list = field(default_factory=list)


def unique_ids(raw_ids):
    """The benchmark's own ids made unique: an id that repeats becomes `<id>#<k>` for every one
    of its occurrences (k = 0, 1, ... in order of appearance); a unique id stays as it is."""
    counts = Counter(raw_ids)
    seen = Counter()
    out = []
    for rid in raw_ids:
        if counts[rid] == 1:
            out.append(rid)
        else:
            out.append(f"{rid}#{seen[rid]}")
            seen[rid] += 1
    return out


def read_json(path):
    """`json.load` with an error that names the file and the position of the problem."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise BenchmarkError(f"{path}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from None


def read_jsonl(path):
    """JSON Lines -> list of records; an error names `file:line`. Blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: file not found")
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise BenchmarkError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return records


def read_json_list(path, what: str = "records") -> list:
    """A JSON file that must hold a list (of `what`)."""
    records = read_json(path)
    if not isinstance(records, list):
        raise BenchmarkError(f"{path}: expected a JSON list of {what}, found {type(records).__name__}")
    return records


def record_ids(records, path, first: int = 0) -> list:
    """The records' own `id`s made unique (`unique_ids`). `first` numbers the records in errors:
    0 for the items of a JSON list, 1 for the lines of a JSONL file."""
    return unique_ids([str(require(r, "id", str, f"{path}:{k + first}")) for k, r in enumerate(records)])


def require(record, key, types, where):
    """`record[key]`, checked to be of `types`; else a BenchmarkError naming `where` and the key."""
    if not isinstance(record, dict):
        raise BenchmarkError(f"{where}: expected a JSON object, found {type(record).__name__}")
    if key not in record:
        raise BenchmarkError(f"{where}: missing key {key!r} (keys: {sorted(record)})")
    value = record[key]
    if not isinstance(value, types):
        expected = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise BenchmarkError(f"{where}: key {key!r} should be {expected}, found {type(value).__name__}")
    return value


def tool_list_from_prompt(text, where):
    """The JSON tool list inside a ReAct system prompt (RoTBench, ToolEyes).

    RoTBench's own evaluator takes the text from the first `[` to 13 characters before the end
    (`\\n\\nLet's Begin!`); decoding one JSON value from the first `[` after the
    "following tools:" marker finds the same list and does not depend on the prompt's tail.
    """
    marker = text.find("following tools:")
    start = text.find("[", marker if marker >= 0 else 0)
    if start < 0:
        raise BenchmarkError(f"{where}: no JSON tool list found in the system prompt")
    try:
        tools, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise BenchmarkError(f"{where}: the tool list in the system prompt is not valid JSON ({e.msg})") from None
    if not isinstance(tools, list):
        raise BenchmarkError(f"{where}: the system prompt's tool block is a {type(tools).__name__}, not a list")
    return tools
