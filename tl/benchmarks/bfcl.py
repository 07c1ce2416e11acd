"""BFCL-v3 (Berkeley Function-Calling Leaderboard), the single-turn AST categories.

Files are JSON Lines despite their `.json` suffix:
- `BFCL_v3_<category>.json`: `{"id", "question": [[{"role", "content"}, ...]], "function": [schema, ...]}`;
- `possible_answer/BFCL_v3_<category>.json`: `{"id", "ground_truth": [{name: {param: [acceptable
  values]}}, ...]}` with the same ids; `""` among a parameter's values = it may be omitted.
Categories: simple, multiple, parallel, parallel_multiple, and irrelevance (no answer file: the
right output is no call). Later releases (the `bfcl-eval` PyPI package ships `BFCL_v4_*` files)
rename `simple` to `simple_python`; both spellings are read, and the category is reported under
the v3 name. Ids are BFCL's own (`simple_0`, `parallel_3`, ...), unique across categories. As in
BFCL's checker, a simple item's expected call is named after the question's function, whatever
name its ground_truth entry uses (they differ once: simple_363).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from tl.benchmarks.base import BenchmarkError, Item, Loaded, read_jsonl, record_ids, require
from tl.schema import normalize_tools

CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance")
_FILE = re.compile(r"BFCL_v(\d+)_(simple_python|simple|multiple|parallel_multiple|parallel|irrelevance)\.json$")


def package_data_dir():
    """The data directory of the `bfcl-eval` package when it is installed (e.g. with
    `pip install bfcl-eval --no-deps`), found without importing it; None otherwise."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return data if data.is_dir() else None


def find_files(path) -> dict:
    """{category: question file} under `path` (a directory, or one question file). Where one
    directory holds several BFCL versions of a category, the newest is used."""
    path = Path(path)
    candidates = [path] if path.is_file() else sorted(path.glob("BFCL_v*_*.json"))
    found = {}
    for f in candidates:
        m = _FILE.search(f.name)
        if not m:
            continue
        category = "simple" if m.group(2) == "simple_python" else m.group(2)
        version = int(m.group(1))
        if category not in found or version > found[category][0]:
            found[category] = (version, f)
    return {c: found[c][1] for c in CATEGORIES if c in found}


def _messages(question, where):
    """BFCL's `question` (a list of turns, each a list of messages) -> trajectory messages."""
    if not isinstance(question, list) or not question or not isinstance(question[0], list):
        raise BenchmarkError(f"{where}: 'question' should be a list of turns, each a list of messages")
    messages = []
    for turn in question:  # single-turn categories hold one turn
        for m in turn:
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
                raise BenchmarkError(f"{where}: a question message should be {{'role': system|user|assistant, 'content': str}}, found {m!r:.120}")
            messages.append({"role": m["role"], "content": m["content"]})
    return messages


def load_category(question_file, category: str, name: str = "bfcl") -> list[Item]:
    """One category's question file (and its possible_answer file) -> Items (mode "bfcl")."""
    question_file = Path(question_file)
    records = read_jsonl(question_file)
    answers = {}
    if category != "irrelevance":
        answer_file = question_file.parent / "possible_answer" / question_file.name
        for k, rec in enumerate(read_jsonl(answer_file)):
            answers[str(require(rec, "id", str, f"{answer_file}:{k + 1}"))] = require(rec, "ground_truth", list, f"{answer_file}:{k + 1}")
    items = []
    for k, (rec, item_id) in enumerate(zip(records, record_ids(records, question_file, first=1))):
        where = f"{question_file}:{k + 1}"
        try:
            tools = normalize_tools(require(rec, "function", list, where))
        except ValueError as e:
            raise BenchmarkError(f"{where}: {e}") from None
        if category == "irrelevance":
            gold = []
        else:
            if rec["id"] not in answers:
                raise BenchmarkError(f"{where}: id {rec['id']!r} has no entry in {answer_file}")
            gold = answers[rec["id"]]
            for g in gold:
                if not (isinstance(g, dict) and len(g) == 1 and isinstance(next(iter(g.values())), dict)):
                    raise BenchmarkError(f"{answer_file}: id {rec['id']!r}: each ground_truth entry should be {{name: {{param: [values]}}}}, found {g!r:.120}")
            if category == "simple" and len(gold) == 1 and tools:
                # BFCL's simple checker expects the question's only function by *its* name and reads
                # just the gold's parameters (simple_363's gold says find_closest for
                # restaurant_search.find_closest).
                gold = [{tools[0]["name"]: next(iter(gold[0].values()))}]
        items.append(Item(item_id, name, tools, _messages(rec.get("question"), where), gold, "bfcl", category))
    return items


def load(path=None) -> list[Loaded]:
    """All categories found under `path` as one unit "bfcl" (ids are unique across categories).
    With no path, the installed `bfcl-eval` package's data directory."""
    if path is None:
        path = package_data_dir()
        if path is None:
            raise BenchmarkError("BFCL: no data path given and the bfcl-eval package is not installed "
                                 "(pip install bfcl-eval --no-deps, or pass --data DIR with BFCL_v3_*.json)")
    files = find_files(path)
    if not files:
        raise BenchmarkError(f"{path}: no BFCL question files found (expected BFCL_v3_<category>.json, categories {', '.join(CATEGORIES)})")
    items = []
    for category, f in files.items():
        items += load_category(f, category)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise BenchmarkError(f"{path}: BFCL ids repeat across category files; expected each id once")
    return [Loaded("bfcl", items)]
