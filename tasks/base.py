"""What the benchmark loaders share: the types, the errors, the ids and the robust file reader.

Single-turn benchmarks become `Item`s (tools, the conversation before the target call, the gold in
the form tl.classify reads for the item's `mode`); multi-turn ones become `Task`s (tools, a query).
Ids: the benchmark's own where unique in its file, else `<id>#<k>` (k = 0, 1, ... in order).
A file or record without the expected shape raises `BenchmarkError("file:record: reason")`, never
a traceback (bytes that are not UTF-8, JSON nested past MAX_DEPTH, a 5,000-digit integer, a
directory included). A record the benchmark itself ships broken (gold that does not parse) is
`Skipped`, so that the rest of its file still evaluates.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tl.calls import Call, normalize_tools, valid_unicode
from tl.episode import Item, Task  # noqa: F401  (the loaders build them)


class BenchmarkError(ValueError):
    """A benchmark file without the expected shape; the message is `file:record: reason`."""


@dataclass(frozen=True)
class Skipped:
    """A record left out of evaluation because the benchmark file itself is broken there."""
    where: str  # file:record
    reason: str


@dataclass
class Loaded:
    """One evaluation unit (a file; BFCL's categories together): its name (e.g.
    "rotbench/First_Turn/clean"), its items or tasks (ids unique) and the skipped records."""
    name: str
    items: list
    skipped: list = field(default_factory=list)


def unique_ids(raw_ids) -> list:
    """A repeated id becomes `<id>#<k>` at each of its occurrences (k = 0, 1, ... in order)."""
    counts, seen, out = Counter(raw_ids), Counter(), []
    for rid in raw_ids:
        out.append(rid if counts[rid] == 1 else f"{rid}#{seen[rid]}")
        seen[rid] += 1
    return out


def record_ids(records, path, wheres=None) -> list:
    """The records' own string `id`s made unique; errors name `wheres[k]`, else `path:k`."""
    return unique_ids([require(r, "id", str, wheres[k] if wheres else f"{path}:{k}") for k, r in enumerate(records)])


def require(record, key, types, where):
    """`record[key]`, checked to be of `types`; else a BenchmarkError naming `where` and the key."""
    if not isinstance(record, dict):
        raise BenchmarkError(f"{where}: expected a JSON object, found {type(record).__name__}")
    if key not in record:
        raise BenchmarkError(f"{where}: missing key {key!r} (keys: {sorted(record)})")
    if not isinstance(record[key], types):
        expected = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise BenchmarkError(f"{where}: key {key!r} should be {expected}, found {type(record[key]).__name__}")
    return record[key]


# ----------------------------------------------------------------------------- reading files

MAX_DEPTH = 100  # JSON nesting allowed in a benchmark file; the real ones nest at most 10 deep
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S)  # a string (skipped whole) or a bracket
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # UTF-8 holds no lone surrogate: only an escape makes one
_DECODER = json.JSONDecoder()


def _too_deep(text: str, start: int) -> int | None:
    """The offset of the first bracket nested deeper than MAX_DEPTH in the JSON value at `start`,
    else None. Checked before decoding: json, and the code walking the value, recurse per level."""
    depth = 0
    for m in _TOKEN.finditer(text, start):
        if m.group() in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return m.start()
        elif m.group() in ("]", "}"):
            depth -= 1
            if depth == 0:  # the value ends here
                return None
    return None


def loads(text: str, where, *, start: int = 0, whole: bool = True, lines: bool = False):
    """The JSON value at offset `start` of `text` (`whole`: only whitespace may follow), its strings
    made valid Unicode (tl.calls.valid_unicode). What json cannot read (syntax, nesting past
    MAX_DEPTH, an integer past sys.get_int_max_str_digits()) is a BenchmarkError naming `where`,
    then `:<line>: reason (column c)` when `lines` (a whole file), else `reason (line l, column c)`."""
    def error(pos, reason):
        if pos is None:
            return BenchmarkError(f"{where}: {reason}")
        line, col = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        if lines:
            return BenchmarkError(f"{where}:{line}: {reason} (column {col})")
        return BenchmarkError(f"{where}: {reason} ({'' if line == 1 else f'line {line}, '}column {col})")

    start = len(text) - len(text[start:].lstrip())  # as json.loads: whitespace may precede the value
    if (deep := _too_deep(text, start)) is not None:
        raise error(deep, f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value, end = _DECODER.raw_decode(text, start)
        if whole and text[end:].strip():
            raise json.JSONDecodeError("Extra data", text, len(text) - len(text[end:].lstrip()))
    except json.JSONDecodeError as e:
        raise error(e.pos, f"not valid JSON: {e.msg}") from None
    except ValueError as e:  # the only other one json raises: an integer too long for int()
        limit = sys.get_int_max_str_digits()
        m = re.compile(r"\d{%d}" % (limit + 1)).search(text, start) if limit else None
        raise error(m and m.start(), f"an integer of more than {limit} digits, longer than Python reads"
                    if m else f"not readable as JSON ({e})") from None
    return valid_unicode(value) if _SURROGATE_ESCAPE.search(text, start) else value


def read_text(path) -> str:
    """A file's text as UTF-8 (a byte-order mark dropped); missing, not a regular file, unreadable
    or not UTF-8 (the line of the first bad byte named) is a BenchmarkError."""
    path = Path(path)
    if not path.exists():
        raise BenchmarkError(f"{path}: file not found")
    if not path.is_file():  # a directory, or a pipe that could block forever
        raise BenchmarkError(f"{path}: {'is a directory' if path.is_dir() else 'not a regular file'}; expected a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BenchmarkError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line, col = data.count(b"\n", 0, e.start) + 1, e.start - data.rfind(b"\n", 0, e.start)
        raise BenchmarkError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at byte {col} of the line)") from None


def read_json_list(path, what: str = "records") -> list:
    """A JSON file that holds a non-empty list (of `what`); errors name `file:line`."""
    text = read_text(path)
    if not text.strip():
        raise BenchmarkError(f"{path}: empty file; expected JSON")
    records = loads(text, path, lines=True)
    if not isinstance(records, list):
        raise BenchmarkError(f"{path}: expected a JSON list of {what}, found {type(records).__name__}")
    if not records:
        raise BenchmarkError(f"{path}: an empty list; expected a JSON list of {what}")
    return records


def read_jsonl_lines(path, allow_empty: bool = False) -> list[tuple[str, object]]:
    """JSON Lines -> [(`file:line`, record)], blank lines skipped; no record is an error unless `allow_empty`."""
    rows = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):  # not splitlines(): U+2028 may sit in a string
        if line.strip():
            rows.append((f"{path}:{lineno}", loads(line, f"{path}:{lineno}")))
    if not rows and not allow_empty:
        raise BenchmarkError(f"{path}: no records (the file is empty); expected JSON Lines, one record per line")
    return rows


def read_jsonl(path, allow_empty: bool = False) -> list:
    """The records of a JSON Lines file (`read_jsonl_lines` without the places)."""
    return [rec for _, rec in read_jsonl_lines(path, allow_empty)]


def tool_list_from_prompt(text, where) -> list:
    """The JSON tool list in a ReAct system prompt (RoTBench, ToolEyes): one JSON value decoded from
    the first `[` after "following tools:". (RoTBench's evaluator cuts from the first `[` to 13
    characters before the end, `\\n\\nLet's Begin!`: the same list, without depending on the tail.)"""
    marker = text.find("following tools:")
    start = text.find("[", marker if marker >= 0 else 0)
    if start < 0:
        raise BenchmarkError(f"{where}: no JSON tool list found in the system prompt")
    tools = loads(text, f"{where}: the tool list in the system prompt", start=start, whole=False)
    if not isinstance(tools, list):
        raise BenchmarkError(f"{where}: the system prompt's tool block is a {type(tools).__name__}, not a list")
    return tools


def checked(convert, raw, where):
    """`convert(raw)`, its ValueError (or RecursionError) a BenchmarkError naming `where`."""
    try:
        return convert(raw)
    except (ValueError, RecursionError) as e:  # RecursionError: JSON text inside a value, nested past the stack
        raise BenchmarkError(f"{where}: {e if isinstance(e, ValueError) else 'JSON text inside it nested too deeply to read'}") from None


def tools_of(raw, where) -> list[dict]:
    """`tl.calls.normalize_tools(raw)`, its errors a BenchmarkError naming `where`."""
    return checked(normalize_tools, raw, where)


def call_of(raw, where) -> Call:
    """`Call.from_dict(raw)`, its errors a BenchmarkError naming `where`."""
    return checked(Call.from_dict, raw, where)
