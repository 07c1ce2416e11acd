"""The one parser of model output: text -> tool calls, a plain-text answer, or a parse error.

Formats read (the first that applies wins):
1. ReAct (RoTBench, ToolAlpaca, ToolEyes): `Thought: ...\\nAction: NAME\\nAction Input: {json}`.
   The input may be JSON, a JSON string holding JSON, a Python dict literal, or empty (= {}).
   Several Action blocks give several calls.
2. JSON: `{"name": ..., "arguments": {...} | "<json>"}` (also "parameters", OpenAI's
   `{"type": "function", "function": {...}}`, `{"tool_calls": [...]}`) or a list of such objects.
   A single-quoted Python dict spelling of the same is accepted.
3. The project's Python-call syntax `name(key="value", n=3)` (single or double quotes; JSON or
   Python literal names true/false/null/True/False/None), one call per line or `;`, or a
   BFCL-style list `[f(a=1), mod.g(b="x")]` with dotted names. Two spellings Python itself
   rejects are accepted because real tool schemas need them: a keyword as an argument name
   (`f(from="x")`) and a hyphenated tool name (`preferred-routes_get(...)`); a key that is not a
   name at all is written `**{"code:": 1}` (see tl.calls.format_call).
Anything else is a plain-text answer ("no_call") unless it looks like a call attempt (starts
like `name(`, `{` or `[`), which is an "error".

Safety: the text is only ever tokenized (`tokenize`), parsed (`ast.parse`, `json.loads`) and
walked by a small literal-only walker; nothing is evaluated or executed. Input length and
bracket nesting are bounded, and `parse` never raises: every failure, including RecursionError
and MemoryError, becomes `Parsed(kind="error")`.
"""
from __future__ import annotations

import ast
import io
import json
import keyword
import math
import re
import tokenize
import warnings
from dataclasses import dataclass, field

from tl.calls import EOS_MARK, Call

__all__ = ["Call", "Parsed", "parse", "parse_literal", "MAX_CHARS", "MAX_DEPTH"]

MAX_CHARS = 100_000  # a call with a long document argument fits; a runaway generation does not
MAX_DEPTH = 100  # bracket nesting; far below what would exhaust Python's parser or stack


@dataclass(frozen=True)
class Parsed:
    """kind: "calls" (calls non-empty), "no_call" (plain-text answer) or "error" (a call attempt
    that could not be read; `error` says why). format: "react" | "json" | "python" | None."""

    kind: str
    calls: list[Call] = field(default_factory=list)
    error: str | None = None
    format: str | None = None


class _ParseError(Exception):
    pass


def _error(msg: str, fmt: str | None = None) -> Parsed:
    return Parsed("error", [], msg, fmt)


def _no_call() -> Parsed:
    return Parsed("no_call")  # a fresh object each time: `calls` is a list callers may keep

# ----------------------------------------------------------------------------- literal walker

_LITERAL_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def _literal(node: ast.AST, depth: int = 0):
    """A literal AST node -> its JSON value. Names other than true/false/null, operators, calls,
    f-strings, sets, bytes and complex numbers are rejected, never evaluated."""
    if depth > MAX_DEPTH:
        raise _ParseError("value nested too deeply")
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, float) and not math.isfinite(v):
            raise _ParseError(f"non-finite number {v!r}")
        if v is None or isinstance(v, (str, bool, int, float)):
            return v
        raise _ParseError(f"unsupported literal of type {type(v).__name__}")
    if isinstance(node, ast.Name):
        if node.id in _LITERAL_NAMES:
            return _LITERAL_NAMES[node.id]
        raise _ParseError(f"'{node.id}' is a name, not a literal value")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand, depth + 1)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _ParseError("a sign must be followed by a number")
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, depth + 1) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            key = None if k is None else _literal(k, depth + 1)
            if not isinstance(key, str):
                raise _ParseError("dict keys must be strings")
            out[key] = _literal(v, depth + 1)
        return out
    raise _ParseError(f"{type(node).__name__} is not a literal value")


# ----------------------------------------------------------------------------- Python-call syntax

_PLACEHOLDER = "__tl_{}__"


def _rewrite_tokens(text: str) -> tuple[str, dict[str, str]]:
    """Replace keyword argument names (`from=`) and hyphenated/keyword call names
    (`a-b(`) with placeholder identifiers so that `ast.parse` accepts them; returns the new
    text and placeholder -> original. Works on tokens, so string contents are never touched."""
    if "__tl_" in text:
        return text, {}
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                if t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)]
    except (tokenize.TokenError, SyntaxError, ValueError):
        return text, {}
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(pos):
        return starts[pos[0] - 1] + pos[1]

    def is_op(j, *ops):
        return 0 <= j < len(toks) and toks[j].type == tokenize.OP and toks[j].string in ops

    edits, renames, j = [], {}, 0
    while j < len(toks):
        t = toks[j]
        if t.type != tokenize.NAME:
            j += 1
            continue
        at_call_start = j == 0 or is_op(j - 1, "[", ",", "(", ";") or toks[j - 1].type == tokenize.NEWLINE
        if keyword.iskeyword(t.string) and is_op(j + 1, "=") and is_op(j - 1, "(", ","):
            end = j  # a keyword used as an argument name
        elif at_call_start:
            # a run NAME (("-" | ".") NAME)* written without spaces and followed by "("
            end = j
            while (is_op(end + 1, "-", ".") and end + 2 < len(toks) and toks[end + 2].type == tokenize.NAME
                   and toks[end + 1].start == toks[end].end and toks[end + 2].start == toks[end + 1].end):
                end += 2
            run = toks[j:end + 1]
            if not (is_op(end + 1, "(") and (any(r.string == "-" for r in run) or any(keyword.iskeyword(r.string) for r in run))):
                j += 1
                continue
        else:
            j += 1
            continue
        name = _PLACEHOLDER.format(len(renames))
        original = text[offset(toks[j].start):offset(toks[end].end)]
        renames[name] = original
        edits.append((offset(toks[j].start), offset(toks[end].end), name))
        j = end + 1
    for s, e, rep in reversed(edits):
        text = text[:s] + rep + text[e:]
    return text, renames


def _call_name(node: ast.AST, renames: dict[str, str]) -> str:
    if isinstance(node, ast.Name):
        return renames.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        return f"{_call_name(node.value, renames)}.{node.attr}"
    raise _ParseError(f"a call must start with a tool name; found {type(node).__name__}")


def _call_from_node(node: ast.Call, renames: dict[str, str]) -> Call:
    name = _call_name(node.func, renames)
    if node.args:
        raise _ParseError(f"{name}: positional arguments are not supported; write key=value")
    args: dict = {}
    for kw in node.keywords:
        if kw.arg is None:  # **{"non-identifier key": value}
            extra = _literal(kw.value)
            if not isinstance(extra, dict):
                raise _ParseError(f"{name}: ** must be followed by a dict literal")
            items = extra.items()
        else:
            items = [(renames.get(kw.arg, kw.arg), _literal(kw.value))]
        for k, v in items:
            if k in args:
                raise _ParseError(f"{name}: argument {k!r} given twice")
            args[k] = v
    return Call(name, args)


def _parse_python(text: str) -> list[Call]:
    """Raises _ParseError or SyntaxError/ValueError when the text is not a sequence of calls."""
    src, renames = _rewrite_tokens(text)
    with warnings.catch_warnings():  # invalid escapes in strings warn; they are not our problem
        warnings.simplefilter("ignore")
        tree = ast.parse(src, mode="exec")
    calls = []
    for stmt in tree.body:
        node = stmt.value if isinstance(stmt, ast.Expr) else None
        items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
        for item in items:
            if not isinstance(item, ast.Call):
                raise _ParseError("expected tool calls `name(key=value)`; found other Python")
            calls.append(_call_from_node(item, renames))
    return calls


# ----------------------------------------------------------------------------- JSON objects


def _calls_from_obj(obj, fmt: str) -> Parsed:
    if isinstance(obj, dict) and isinstance(obj.get("tool_calls"), list):
        obj = obj["tool_calls"]
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list) or not any(isinstance(o, dict) for o in obj):
        return _no_call()  # a JSON answer (a number, a string, a list of values)
    calls = []
    for i, o in enumerate(obj):
        try:
            calls.append(Call.from_dict(o))
        except ValueError as e:
            return _error(f"JSON call {i}: {e}", fmt)
    return Parsed("calls", calls, None, fmt)


def _python_literal(text: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _literal(ast.parse(text, mode="eval").body)


def parse_literal(text: str):
    """A JSON or Python literal (`{'error': 'x'}`, `[1, true]`) -> its value, safely (json.loads,
    else ast + the literal walker). Raises ValueError when the text is not a bounded literal."""
    if not isinstance(text, str) or len(text) > MAX_CHARS or _max_nesting(text) > MAX_DEPTH:
        raise ValueError("not a bounded literal")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return _python_literal(text.strip())
    except (SyntaxError, ValueError, _ParseError, RecursionError, MemoryError) as e:
        raise ValueError(f"not a literal: {e}") from None


# ----------------------------------------------------------------------------- ReAct

_ACTION = re.compile(r"^[ \t]*Action[ \t]*:[ \t]*(.*)$", re.M)
_ACTION_INPUT = re.compile(r"^[ \t]*Action[ \t]*Input[ \t]*:", re.M)
_STOP = re.compile(r"^[ \t]*(?:Observation|Thought|Action|Final Answer)[ \t]*:", re.M)
_NAME = re.compile(r"[A-Za-z_][\w.\-]*")


def _action_input(text: str) -> dict:
    text = _strip_fences(text.strip())
    if not text:
        return {}
    try:
        value, _ = json.JSONDecoder().raw_decode(text)  # trailing text after the object is ignored
        if isinstance(value, str):  # ToolAlpaca-style: the input is a JSON string holding JSON
            value = json.loads(value) if value.strip() else {}
    except json.JSONDecodeError:
        try:
            value = _python_literal(text)
        except (SyntaxError, ValueError, _ParseError):
            raise _ParseError(f"Action Input is neither JSON nor a Python dict: {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise _ParseError(f"Action Input must be an object; found {type(value).__name__}")
    return value


def _parse_react(text: str) -> Parsed:
    actions = list(_ACTION.finditer(text))
    calls = []
    for n, m in enumerate(actions):
        block_end = actions[n + 1].start() if n + 1 < len(actions) else len(text)
        name = m.group(1).strip().strip("`'\"").strip()
        if "(" in name:  # `Action: get_weather(city="Paris")`
            try:
                inline = _parse_python(name)
            except (SyntaxError, ValueError, _ParseError) as e:
                return _error(f"Action {n}: {e}", "react")
            if not inline:
                return _error(f"Action {n}: expected a tool name; found {name[:80]!r}", "react")
            calls.extend(inline)
            continue
        if not _NAME.fullmatch(name):
            return _error(f"Action {n}: expected a tool name; found {name[:80]!r}", "react")
        inp = _ACTION_INPUT.search(text, m.end(), block_end)
        args = {}
        if inp is not None:
            stop = _STOP.search(text, inp.end(), block_end)
            try:
                args = _action_input(text[inp.end(): stop.start() if stop else block_end])
            except (_ParseError, json.JSONDecodeError) as e:
                return _error(f"Action {n} ({name}): {e}", "react")
        calls.append(Call(name, args))
    return Parsed("calls", calls, None, "react")


# ----------------------------------------------------------------------------- entry point

_CALL_START = re.compile(r"\s*\[?\s*[A-Za-z_][\w.\-]*\(")


def _strip_fences(text: str) -> str:
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text[: text.rfind("```")] if "```" in text else text
    return text.strip()


def _max_nesting(text: str) -> int:
    depth = best = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}":
            depth = max(depth - 1, 0)
    return best


def _parse(text) -> Parsed:
    if not isinstance(text, str):
        return _error(f"expected model output as str; found {type(text).__name__}")
    if len(text) > MAX_CHARS:  # checked before any scanning, and again after cutting at EOS
        text = text[: MAX_CHARS + len(EOS_MARK)]
    text = text.split(EOS_MARK, 1)[0].strip()
    if len(text) > MAX_CHARS:
        return _error(f"output longer than {MAX_CHARS} characters")
    text = _strip_fences(text)
    if not text:
        return _no_call()
    if _max_nesting(text) > MAX_DEPTH:
        return _error(f"brackets nested deeper than {MAX_DEPTH}")
    if _ACTION.search(text):
        return _parse_react(text)
    if text[0] in "{[":
        try:
            return _calls_from_obj(json.loads(text), "json")
        except json.JSONDecodeError:
            pass
        if text[0] == "{":
            try:
                return _calls_from_obj(_python_literal(text), "json")
            except (SyntaxError, ValueError, _ParseError) as e:
                return _error(f"not a JSON call object: {e}", "json")
    try:
        calls = _parse_python(text)
    except (SyntaxError, ValueError, _ParseError) as e:
        if _CALL_START.match(text):
            return _error(f"not a valid call: {e}", "python")
        return _no_call()  # prose
    return Parsed("calls", calls, None, "python") if calls else _no_call()


def parse(text) -> Parsed:
    """Model output -> `Parsed` (see the module docstring). Never raises."""
    try:
        return _parse(text)
    except (RecursionError, MemoryError) as e:
        return _error(f"input too deeply nested or too large ({type(e).__name__})")
    except Exception as e:  # a parser bug must not take down a training loop; report it instead
        return _error(f"internal parser error: {type(e).__name__}: {e}")
