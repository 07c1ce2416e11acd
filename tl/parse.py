"""The one parser of model output: text -> tool calls, a plain-text answer, or a parse error.

Formats, the first that applies wins:
1. ReAct `Action: NAME\\nAction Input: {json}`, a call per Action block (the input JSON, a JSON
   string holding JSON, a Python dict or empty).
2. JSON `{"name", "arguments" | "parameters"}`, OpenAI's `{"type": "function", "function": ...}`,
   `{"tool_calls": [...]}`, a list of these, or a Python dict.
3. Python calls `name(key="value", n=3)` (either quote; true/null or True/None), one per line or
   `;`, or a BFCL list `[f(a=1), mod.g(b="x")]`; also keyword argument names (`from=`), hyphenated
   tool names (`a-b(`) and `**{"code:": 1}`, as real schemas need (tl.calls.format_call).
Anything else is a plain answer ("no_call"), or an "error" if it starts like a call (`name(`,
`{`, `[`). Nothing is evaluated (tokenize, ast.parse, json.loads and a literal-only walker);
length and nesting are bounded; `parse` never raises.
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
from itertools import accumulate

from tl.calls import EOS_MARK, Call

__all__ = ["Call", "Parsed", "parse", "parse_literal", "MAX_CHARS", "MAX_DEPTH"]

MAX_CHARS = 100_000  # a call with a long document argument fits; a runaway generation does not
MAX_DEPTH = 100  # bracket nesting; far below what would exhaust Python's parser or stack


@dataclass(frozen=True)
class Parsed:
    """kind: "calls" (non-empty), "no_call" (a plain answer) or "error" (an unreadable call attempt;
    `error` says why). format: "react" | "json" | "python" | None."""

    kind: str
    calls: list[Call] = field(default_factory=list)
    error: str | None = None
    format: str | None = None


class _ParseError(ValueError):
    pass


def _error(msg: str, fmt: str | None = None) -> Parsed:
    return Parsed("error", [], msg, fmt)


def _strip_fences(text: str) -> str:
    """The text, stripped; if it opens a Markdown code fence, only what is inside (the opening line
    dropped, up to the last closing fence)."""
    if text.startswith("```"):
        text = text.partition("\n")[2]
        if "```" in text:
            text = text[: text.rfind("```")]
    return text.strip()


def _max_nesting(text: str) -> int:
    """The deepest bracket nesting in the text, strings included (a cheap bound before any parser runs)."""
    depth = best = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}":
            depth = max(depth - 1, 0)  # a stray closer does not hide later nesting
    return best


_LITERAL_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def _literal(node: ast.AST, depth: int = 0):
    """A literal AST node -> its JSON value; anything else (names, operators, calls, f-strings,
    sets, bytes, complex) is rejected, never evaluated."""
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
            key = None if k is None else _literal(k, depth + 1)  # k is None for `{**x}`
            if not isinstance(key, str):
                raise _ParseError("dict keys must be strings")
            out[key] = _literal(v, depth + 1)
        return out
    raise _ParseError(f"{type(node).__name__} is not a literal value")


def _ast(text: str, mode: str) -> ast.AST:
    with warnings.catch_warnings():  # invalid escapes in strings warn; they are not our problem
        warnings.simplefilter("ignore")
        return ast.parse(text, mode=mode)


def parse_literal(text: str):
    """A JSON or Python literal (`{'error': 'x'}`, `[1, true]`) -> its value, never evaluated;
    ValueError when the text is not a bounded literal."""
    if not isinstance(text, str) or len(text) > MAX_CHARS or _max_nesting(text) > MAX_DEPTH:
        raise ValueError("not a bounded literal")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return _literal(_ast(text.strip(), "eval").body)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
            raise ValueError(f"not a literal: {e}") from None


# ----------------------------------------------------------------------------- Python calls
def _rewrite_tokens(text: str) -> tuple[str, dict[str, str]]:
    """(text, {placeholder: original}): keyword argument names (`from=`) and call names with a `-`
    or a keyword (`a-b(`) replaced by names `ast.parse` accepts, token-wise (strings untouched)."""
    if "__tl_" in text:  # could collide with a placeholder
        return text, {}
    layout = (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type not in layout]
    except (tokenize.TokenError, SyntaxError, ValueError):
        return text, {}
    # tokens give (row, col); line_starts turns them into offsets in `text`
    line_starts = [0, *accumulate(map(len, text.splitlines(keepends=True)))]

    def offset(position):
        row, col = position
        return line_starts[row - 1] + col

    def is_op(j, *ops):
        return 0 <= j < len(toks) and toks[j].type == tokenize.OP and toks[j].string in ops

    def glued(k):
        """Tokens k, k + 1 and k + 2 read `NAME-NAME` or `NAME.NAME`, written without spaces."""
        return (
            is_op(k + 1, "-", ".")
            and k + 2 < len(toks)
            and toks[k + 2].type == tokenize.NAME
            and toks[k + 1].start == toks[k].end
            and toks[k + 2].start == toks[k + 1].end
        )

    out = []
    renames = {}
    done = 0  # text[:done] is already in `out`
    j = 0
    while j < len(toks):
        t = toks[j]
        end = None  # the last token to replace, if any
        is_name = t.type == tokenize.NAME
        at_call_start = j == 0 or is_op(j - 1, "[", ",", "(", ";") or toks[j - 1].type == tokenize.NEWLINE
        if is_name and keyword.iskeyword(t.string) and is_op(j + 1, "=") and is_op(j - 1, "(", ","):
            end = j  # a keyword as an argument name
        elif is_name and at_call_start:
            k = j  # a call name: NAME (("-" | ".") NAME)*
            while glued(k):
                k += 2
            name_tokens = toks[j : k + 1]
            if is_op(k + 1, "(") and any(r.string == "-" or keyword.iskeyword(r.string) for r in name_tokens):
                end = k
        if end is not None:
            start_offset = offset(t.start)
            end_offset = offset(toks[end].end)
            name = f"__tl_{len(renames)}__"
            renames[name] = text[start_offset:end_offset]
            out += [text[done:start_offset], name]
            done = end_offset
            j = end
        j += 1
    return "".join(out) + text[done:], renames


def _call_name(node: ast.AST, renames: dict[str, str]) -> str:
    if isinstance(node, ast.Name):
        return renames.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        return f"{_call_name(node.value, renames)}.{node.attr}"
    raise _ParseError(f"a call must start with a tool name; found {type(node).__name__}")


def _parse_python(text: str) -> list[Call]:
    """SyntaxError or ValueError when the text is not a sequence of calls."""
    src, renames = _rewrite_tokens(text)
    calls = []
    for stmt in _ast(src, "exec").body:
        node = stmt.value if isinstance(stmt, ast.Expr) else None
        # a BFCL list `[f(a=1), g(b=2)]` holds several calls
        items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
        for item in items:
            if not isinstance(item, ast.Call):
                raise _ParseError("expected tool calls `name(key=value)`; found other Python")
            name = _call_name(item.func, renames)
            if item.args:
                raise _ParseError(f"{name}: positional arguments are not supported; write key=value")
            args = {}
            for kw in item.keywords:
                value = _literal(kw.value)
                if kw.arg is None and not isinstance(value, dict):  # `**{"non-identifier key": value}`
                    raise _ParseError(f"{name}: ** must be followed by a dict literal")
                if kw.arg is None:
                    pairs = value.items()
                else:
                    pairs = [(renames.get(kw.arg, kw.arg), value)]
                for k, v in pairs:
                    if k in args:
                        raise _ParseError(f"{name}: argument {k!r} given twice")
                    args[k] = v
            calls.append(Call(name, args))
    return calls


# ----------------------------------------------------------------------------- JSON and ReAct
def _calls_from_obj(obj) -> Parsed:
    """A parsed JSON (or Python literal) value as calls: a call object, `{"tool_calls": [...]}` or a list of
    call objects; any other value is a plain answer."""
    if isinstance(obj, dict):
        obj = obj["tool_calls"] if isinstance(obj.get("tool_calls"), list) else [obj]
    if not isinstance(obj, list) or not any(isinstance(o, dict) for o in obj):
        return Parsed("no_call")  # a JSON answer (a number, a string, a list of values)
    calls = []
    for i, o in enumerate(obj):
        try:
            calls.append(Call.from_dict(o))
        except ValueError as e:
            return _error(f"JSON call {i}: {e}", "json")
    return Parsed("calls", calls, None, "json")


_ACTION = re.compile(r"^[ \t]*Action[ \t]*:[ \t]*(.*)$", re.M)
_ACTION_INPUT = re.compile(r"^[ \t]*Action[ \t]*Input[ \t]*:", re.M)
_STOP = re.compile(r"^[ \t]*(?:Observation|Thought|Action|Final Answer)[ \t]*:", re.M)
_NAME = r"[A-Za-z_][\w.\-]*"  # a tool name, dotted or hyphenated as real ones are


def _action_input(text: str) -> dict:
    """A ReAct `Action Input:` as the call's arguments; _ParseError unless it reads as an object."""
    text = _strip_fences(text.strip())
    if not text:
        return {}
    try:
        value, _ = json.JSONDecoder().raw_decode(text)  # trailing text after the object is ignored
        if isinstance(value, str):  # ToolAlpaca: the input is a JSON string holding JSON
            value = json.loads(value) if value.strip() else {}
    except json.JSONDecodeError:
        try:
            value = _literal(_ast(text, "eval").body)
        except (SyntaxError, ValueError):
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
        if re.fullmatch(_NAME, name):
            inp = _ACTION_INPUT.search(text, m.end(), block_end)
            try:
                arguments = {}
                if inp:
                    # the input runs until the next Observation/Thought/Action line or the block's end
                    stop = _STOP.search(text, inp.end(), block_end)
                    input_end = stop.start() if stop else block_end
                    arguments = _action_input(text[inp.end() : input_end])
                calls.append(Call(name, arguments))
            except (_ParseError, json.JSONDecodeError) as e:
                return _error(f"Action {n} ({name}): {e}", "react")
            continue
        try:  # `Action: get_weather(city="Paris")`
            inline = _parse_python(name) if "(" in name else []
        except (SyntaxError, ValueError) as e:
            return _error(f"Action {n}: {e}", "react")
        if not inline:
            return _error(f"Action {n}: expected a tool name; found {name[:80]!r}", "react")
        calls.extend(inline)
    return Parsed("calls", calls, None, "react")


def _parse(text) -> Parsed:
    if not isinstance(text, str):
        return _error(f"expected model output as str; found {type(text).__name__}")
    text = text[: MAX_CHARS + len(EOS_MARK)].split(EOS_MARK, 1)[0].strip()  # cut before any scanning
    if len(text) > MAX_CHARS:
        return _error(f"output longer than {MAX_CHARS} characters")
    text = _strip_fences(text)
    if not text:
        return Parsed("no_call")
    if _max_nesting(text) > MAX_DEPTH:
        return _error(f"brackets nested deeper than {MAX_DEPTH}")
    if _ACTION.search(text):
        return _parse_react(text)
    if text[0] in "{[":
        try:
            return _calls_from_obj(json.loads(text))
        except json.JSONDecodeError:
            if text[0] == "{":  # a Python dict spelling
                try:
                    return _calls_from_obj(_literal(_ast(text, "eval").body))
                except (SyntaxError, ValueError) as e:
                    return _error(f"not a JSON call object: {e}", "json")
    try:
        calls = _parse_python(text)
    except (SyntaxError, ValueError) as e:
        if re.match(rf"\s*\[?\s*{_NAME}\(", text):  # it starts like a call: a failed attempt
            return _error(f"not a valid call: {e}", "python")
        return Parsed("no_call")
    if not calls:
        return Parsed("no_call")
    return Parsed("calls", calls, None, "python")


def parse(text) -> Parsed:
    """Model output -> `Parsed` (see the module docstring). Never raises."""
    try:
        return _parse(text)
    except (RecursionError, MemoryError) as e:
        return _error(f"input too deeply nested or too large ({type(e).__name__})")
    except Exception as e:  # a parser bug must not take down a training loop; report it instead
        return _error(f"internal parser error: {type(e).__name__}: {e}")
