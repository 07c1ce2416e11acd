"""What the benchmark loaders share: result types, ids, and file readers that fail with one line.

Ids are the benchmark's own where unique in the file, else `<id>#<k>` (k = 0, 1, ... in order). A file
or record without the expected shape raises `BenchmarkError("file:record: reason")`, never a
traceback (not UTF-8, nested past MAX_DEPTH, a 5,000-digit integer, a directory). A record the
benchmark itself ships broken (gold that does not parse) is `Skipped`: the rest of the file still
counts.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tl.calls import Call, normalize_tools, valid_unicode
from tl.episode import Item, Task  # noqa: F401  (the loaders build them)
from tl.errors import InputError


class BenchmarkError(InputError):
    """A benchmark file without the expected shape; the message is `file:record: reason`."""


@dataclass(frozen=True)
class Skipped:
    where: str  # file:record
    reason: str


@dataclass
class Loaded:
    """One evaluation unit (a file; BFCL's categories together), e.g. "rotbench/First_Turn/clean"."""

    name: str
    items: list  # Items or Tasks, ids unique
    skipped: list = field(default_factory=list)


def unique_ids(raw_ids) -> list:
    """Each id as it is where unique, else `<id>#<k>` (k = 0, 1, ... in order of appearance)."""
    counts = Counter(raw_ids)
    seen = Counter()  # how often each id came so far
    out = []
    for rid in raw_ids:
        out.append(rid if counts[rid] == 1 else f"{rid}#{seen[rid]}")
        seen[rid] += 1
    return out


def record_ids(records, path, wheres=None) -> list:
    """The records' own string `id`s made unique; errors name `wheres[k]`, else `path:k`."""
    raw_ids = []
    for k, r in enumerate(records):
        where = wheres[k] if wheres else f"{path}:{k}"
        raw_ids.append(require(r, "id", str, where))
    return unique_ids(raw_ids)


def require(record, key, kind: type, where):
    """`record[key]`, checked to be a `kind`."""
    if not isinstance(record, dict):
        raise BenchmarkError(f"{where}: expected a JSON object, found {type(record).__name__}")
    if key not in record:
        raise BenchmarkError(f"{where}: missing key {key!r} (keys: {sorted(record)})")
    if not isinstance(record[key], kind):
        raise BenchmarkError(
            f"{where}: key {key!r} should be {kind.__name__}, found {type(record[key]).__name__}"
        )
    return record[key]


def checked(convert, raw, where):
    """`convert(raw)`, its ValueError (or RecursionError: JSON text in a value nested past the stack)
    raised as a BenchmarkError."""
    try:
        return convert(raw)
    except (ValueError, RecursionError) as e:
        reason = e if isinstance(e, ValueError) else "JSON text inside it nested too deeply to read"
        raise BenchmarkError(f"{where}: {reason}") from None


tools_of = partial(checked, normalize_tools)
call_of = partial(checked, Call.from_dict)

MAX_DEPTH = 100  # JSON nesting allowed in a benchmark file; the real ones nest at most 10 deep
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S)  # a string (skipped whole) or a bracket
# UTF-8 holds no lone surrogate: only an escape makes one
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_DECODER = json.JSONDecoder()


def _too_deep(text: str, start: int) -> int | None:
    """Where the JSON value at `start` first nests past MAX_DEPTH (json recurses per level), else None."""
    depth = 0
    for m in _TOKEN.finditer(text, start):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(m.group(), 0)
        if depth > MAX_DEPTH:
            return m.start()
        if depth == 0 and m.group() in ("]", "}"):  # the value ends here
            return None
    return None


def loads(text: str, where, *, start: int = 0, whole: bool = True, lines: bool = False):
    """The JSON value at offset `start` (`whole`: nothing may follow it), strings made valid Unicode.
    Errors name `where`, then `:<line>: reason (column c)` with `lines`, else
    `reason (line l, column c)` (`reason (column c)` on line 1)."""

    def error(pos, reason):
        if pos is None:
            return BenchmarkError(f"{where}: {reason}")
        line = text.count("\n", 0, pos) + 1
        col = pos - text.rfind("\n", 0, pos)
        if lines:
            return BenchmarkError(f"{where}:{line}: {reason} (column {col})")
        line_part = "" if line == 1 else f"line {line}, "
        return BenchmarkError(f"{where}: {reason} ({line_part}column {col})")

    start = len(text) - len(text[start:].lstrip())
    deep = _too_deep(text, start)
    if deep is not None:
        raise error(deep, f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value, end = _DECODER.raw_decode(text, start)
        if whole and text[end:].strip():
            raise json.JSONDecodeError("Extra data", text, len(text) - len(text[end:].lstrip()))
    except json.JSONDecodeError as e:
        raise error(e.pos, f"not valid JSON: {e.msg}") from None
    except ValueError as e:  # the only other one json raises: an integer past sys.get_int_max_str_digits()
        limit = sys.get_int_max_str_digits()  # 0: no limit
        too_long = re.compile(rf"\d{{{limit + 1}}}").search(text, start) if limit else None
        if too_long:
            reason = f"an integer of more than {limit} digits, longer than Python reads"
            raise error(too_long.start(), reason) from None
        raise error(None, f"not readable as JSON ({e})") from None
    if _SURROGATE_ESCAPE.search(text, start):  # only then can a string hold a lone surrogate
        return valid_unicode(value)
    return value


def read_text(path) -> str:
    """A file's UTF-8 text (a byte-order mark dropped)."""
    path = Path(path)
    if not path.is_file():  # missing, a directory, or a pipe that could block forever
        if not path.exists():
            raise BenchmarkError(f"{path}: file not found")
        what = "is a directory" if path.is_dir() else "not a regular file"
        raise BenchmarkError(f"{path}: {what}; expected a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BenchmarkError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - data.rfind(b"\n", 0, e.start)
        raise BenchmarkError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at byte {col} of the line)"
        ) from None


def read_json_list(path, what: str = "records") -> list:
    """A JSON file holding a non-empty list (of `what`)."""
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
    """JSON Lines -> [(`file:line`, record)], blank lines skipped."""
    rows = []
    # split("\n"), not splitlines(): U+2028 may sit inside a string
    for n, line in enumerate(read_text(path).split("\n"), 1):
        if line.strip():
            rows.append((f"{path}:{n}", loads(line, f"{path}:{n}")))
    if not rows and not allow_empty:
        raise BenchmarkError(
            f"{path}: no records (the file is empty); expected JSON Lines, one record per line"
        )
    return rows


def tool_list_from_prompt(text, where) -> list:
    """The JSON tool list of a ReAct system prompt (RoTBench, ToolEyes), from the first `[` after
    "following tools:" (RoTBench's evaluator cuts to 13 characters before the end: the same list)."""
    marker = text.find("following tools:")
    start = text.find("[", marker if marker >= 0 else 0)
    if start < 0:
        raise BenchmarkError(f"{where}: no JSON tool list found in the system prompt")
    tools = loads(text, f"{where}: the tool list in the system prompt", start=start, whole=False)
    if not isinstance(tools, list):
        raise BenchmarkError(
            f"{where}: the system prompt's tool block is a {type(tools).__name__}, not a list"
        )
    return tools
