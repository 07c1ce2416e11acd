"""The shared types of the benchmark loaders: `Item`, `Task`, errors, id and file helpers.

Single-turn benchmarks (RoTBench, BFCL-v3, ToolAlpaca, the synthetic held-out split) become
`Item`s: the tools in the project's normal form, the conversation *before* the target call in
the trajectory format (docs/ARCHITECTURE.md), and the gold answer in the form the text layer's
`classify` reads for the item's `mode`. Multi-turn benchmarks (ToolEyes, the synthetic
multi-turn split) become `Task`s: tools and a query, run by the episode runner.

Item ids (README, "Item ids"): the benchmark's own id where it is unique in its file,
`<id>#<k>` (k = 0, 1, ... by order of appearance) where it repeats, `<Name>/<i>` for
ToolAlpaca. Problems with a whole file or record raise `BenchmarkError` naming `file:record`
and the reason. Every file is read by `read_text` and `loads` (bytes that are not UTF-8, JSON
nested deeper than MAX_DEPTH, a 5,000-digit integer, a directory: such an error too, never a
traceback; evaluate.py prints it as one line). A record the benchmark itself ships broken (e.g.
gold JSON that does not parse) is skipped with a `Skipped` note so that the rest of the file
still evaluates.
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
    """A benchmark file that does not have the expected shape (message: `file:record: reason`)."""


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


MAX_DEPTH = 100  # JSON nesting in a benchmark file; the real ones nest at most 10 deep
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.S)  # strings are skipped whole
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET, _PAIR = re.compile(r"[^\[\]{}]+"), re.compile(r"\[\]|\{\}")
_OPENERS = re.compile(r"[\[{]{%d}" % (MAX_DEPTH + 1))
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # UTF-8 text holds no surrogate; only a JSON escape makes one
_DECODER = json.JSONDecoder()


def _line_column(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)


def _too_deep(text: str, start: int) -> int | None:
    """The offset of the first bracket (outside strings) nested deeper than MAX_DEPTH in the JSON
    value starting at `start`, else None. Checked before decoding: json recurses once per level
    and would exhaust the stack (RecursionError), and so would the code that walks the values."""
    # Fast path (regexes only): the brackets outside strings lose their innermost pairs one level
    # per pass, so balanced brackets that vanish within MAX_DEPTH passes nest no deeper.
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text[start:]))
    for _ in range(0 if _OPENERS.search(brackets) else MAX_DEPTH):  # (a run of openers: straight to the scan)
        if not brackets:
            return None
        brackets = _PAIR.sub("", brackets)
    depth = 0  # too deep, or unbalanced: find the place bracket by bracket
    for m in _STRING_OR_BRACKET.finditer(text, start):
        if m.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return m.start()
        elif m.group() in "]}":
            depth -= 1
            if depth == 0:
                return None
    return None


def loads(text: str, where, *, start: int = 0, whole: bool = True, lines: bool = False):
    """The JSON value in `text` from offset `start` (`whole`: only whitespace may follow it), its
    strings made valid Unicode (tl.calls.valid_unicode: a `"\\ud800"` escape cannot be written
    back as UTF-8). Anything json cannot read is a BenchmarkError naming `where`, followed by
    `:<line>` when `lines` (a whole file) or else `(line, column)`: a syntax error, nesting deeper
    than MAX_DEPTH, an integer longer than Python converts (sys.get_int_max_str_digits(), 4300)."""
    def error(pos, reason):
        if pos is None:
            return BenchmarkError(f"{where}: {reason}")
        line, col = _line_column(text, pos)
        if lines:
            return BenchmarkError(f"{where}:{line}: {reason} (column {col})")
        return BenchmarkError(f"{where}: {reason} ({'' if line == 1 else f'line {line}, '}column {col})")

    start = len(text) - len(text[start:].lstrip())  # as json.loads: whitespace before the value is fine
    deep = _too_deep(text, start)
    if deep is not None:
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
    """A benchmark file's text, decoded as UTF-8 (a leading byte-order mark dropped). Raises
    BenchmarkError when it is missing, not a regular file (a directory), unreadable, or not UTF-8
    (naming the line of the first bad byte)."""
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


def read_json(path):
    """A JSON file's value (`read_text`, then `loads`); errors name `file:line`."""
    text = read_text(path)
    if not text.strip():
        raise BenchmarkError(f"{path}: empty file; expected JSON")
    return loads(text, path, lines=True)


def read_jsonl_lines(path, allow_empty: bool = False) -> list[tuple[str, object]]:
    """JSON Lines -> [(`file:line`, record)] (`read_text`, then `loads` on each line; errors name
    `file:line`). Blank lines are skipped; a file without records is an error unless `allow_empty`."""
    rows = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):  # not splitlines(): U+2028 may sit in a string
        if line.strip():
            rows.append((f"{path}:{lineno}", loads(line, f"{path}:{lineno}")))
    if not rows and not allow_empty:
        raise BenchmarkError(f"{path}: no records (the file is empty); expected JSON Lines, one record per line")
    return rows


def read_jsonl(path, allow_empty: bool = False) -> list:
    """The records of a JSON Lines file (see `read_jsonl_lines`)."""
    return [rec for _, rec in read_jsonl_lines(path, allow_empty)]


def read_json_list(path, what: str = "records") -> list:
    """A JSON file that must hold a non-empty list (of `what`)."""
    records = read_json(path)
    if not isinstance(records, list):
        raise BenchmarkError(f"{path}: expected a JSON list of {what}, found {type(records).__name__}")
    if not records:
        raise BenchmarkError(f"{path}: an empty list; expected a JSON list of {what}")
    return records


def record_ids(records, path, first: int = 0, wheres=None) -> list:
    """The records' own `id`s made unique (`unique_ids`). Errors name `wheres[k]` when given (the
    `file:line` of `read_jsonl_lines`), else `path:<k + first>`: first = 0 numbers the items of a
    JSON list."""
    return unique_ids([str(require(r, "id", str, wheres[k] if wheres else f"{path}:{k + first}"))
                       for k, r in enumerate(records)])


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
    tools = loads(text, f"{where}: the tool list in the system prompt", start=start, whole=False)
    if not isinstance(tools, list):
        raise BenchmarkError(f"{where}: the system prompt's tool block is a {type(tools).__name__}, not a list")
    return tools


def _schema_error(e: Exception) -> str:
    # RecursionError: JSON text inside a value (ToolAlpaca's Parameters line, a tool or arguments
    # given as text), which tl.schema decodes, nested deeper than Python's stack
    return str(e) if isinstance(e, ValueError) else "JSON text inside it nested too deeply to read"


def tools_of(raw, where) -> list[dict]:
    """`normalize_tools(raw)`, its errors a BenchmarkError naming `where`."""
    try:
        return normalize_tools(raw)
    except (ValueError, RecursionError) as e:
        raise BenchmarkError(f"{where}: {_schema_error(e)}") from None


def call_of(raw, where) -> Call:
    """`Call.from_dict(raw)`, its errors a BenchmarkError naming `where`."""
    try:
        return Call.from_dict(raw)
    except (ValueError, RecursionError) as e:
        raise BenchmarkError(f"{where}: {_schema_error(e)}") from None
