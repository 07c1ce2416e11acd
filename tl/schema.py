"""Tool schemas in one normal form, and the `Call` value every other module passes around.

Normal form (OpenAI function style, a plain JSON-able dict):

    {"name": str, "description": str,
     "parameters": {"type": "object",
                    "properties": {key: {"type": str, "description": str, ...}},
                    "required": [key, ...]}}

`normalize_tool` accepts the variants found in the benchmark data:
- OpenAI: the function dict itself or `{"type": "function", "function": {...}}`;
- BFCL-v3: `"type": "dict"` parameters, dotted names (`math.factorial`, kept as they are) and the
  type words `float`, `tuple`, `any`, `dict`;
- RoTBench / ToolEyes: JSON lists of OpenAI function dicts (also as JSON text);
- ToolAlpaca: `Function_Description` strings `'<description>\\nParameters: {"key": "Required. string.
  <text>"}\\nOutput: ...'` (a `{name: string}` dict for `normalize_tools`, or a string plus `name=`);
- a ToolBench-style parameter list `[{"name", "type", "description", "required": bool}]`.

Type words are mapped to JSON-schema words: float -> number, tuple -> array, dict -> object,
Python's str/int/bool/list -> string/integer/boolean/array. BFCL's `any` becomes `string`, which
is what BFCL's own checker does with it. A missing type becomes `string`. Other keys of a
property (`enum`, `default`, `items`, `format`, ...) are kept; `items` and nested `properties`
are normalised recursively.

`Call` lives here (not in tl.parse) so that render, parse and classify can all import it without
a cycle; `tl.parse` re-exports it.
"""
from __future__ import annotations

import inspect
import json
import re
import types
import typing
from dataclasses import dataclass, field

# ----------------------------------------------------------------------------- the Call value


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(x):
    """`x` with every lone surrogate (a JSON `"\\ud800"` escape decodes to one) in its strings,
    keys included, replaced by U+FFFD: such a string cannot be encoded as UTF-8, so it would crash
    the tokenizer, the sandbox's pipe or a JSON file the moment a model wrote one."""
    if isinstance(x, str):
        return _SURROGATE.sub("\ufffd", x) if not x.isascii() else x
    if isinstance(x, dict):
        return {valid_unicode(k): valid_unicode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [valid_unicode(v) for v in x]
    return x


@dataclass(frozen=True)
class Call:
    """One tool call: a tool name and its keyword arguments (JSON values).

    Frozen so a parsed call cannot be edited by accident; `arguments` is a plain dict, so a
    Call is not hashable. Its strings are always valid Unicode (`valid_unicode`).
    """

    name: str
    arguments: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "name", valid_unicode(self.name))
        object.__setattr__(self, "arguments", valid_unicode(self.arguments))

    def to_dict(self) -> dict:
        """The trajectory-record form `{"name": ..., "arguments": {...}}`."""
        return {"name": self.name, "arguments": dict(self.arguments)}

    @classmethod
    def from_dict(cls, d) -> "Call":
        """Build a Call from `{"name", "arguments"}` (arguments as a dict or a JSON string), also
        accepting OpenAI's `{"type": "function", "function": {...}}` and `"parameters"` for
        `"arguments"`. Raises ValueError saying what was found when `d` is not such a dict."""
        if isinstance(d, Call):
            return d
        if not isinstance(d, dict):
            raise ValueError(f"a tool call must be a dict with 'name' and 'arguments'; found {type(d).__name__}: {d!r:.200}")
        if isinstance(d.get("function"), dict):
            d = d["function"]
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a tool call needs a non-empty string 'name'; found keys {sorted(d)} with name={name!r:.100}")
        args = d.get("arguments", d.get("parameters", {}))
        if args is None:
            args = {}
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                raise ValueError(f"call {name!r}: 'arguments' is a string that is not JSON ({e}): {args!r:.200}") from None
        if not isinstance(args, dict):
            raise ValueError(f"call {name!r}: 'arguments' must be an object; found {type(args).__name__}")
        return cls(name.strip(), dict(args))


# ----------------------------------------------------------------------------- type words

TYPE_WORDS = {
    "string": "string", "str": "string", "text": "string", "any": "string",
    "integer": "integer", "int": "integer", "long": "integer",
    "number": "number", "float": "number", "double": "number",
    "boolean": "boolean", "bool": "boolean",
    "array": "array", "list": "array", "tuple": "array",
    "object": "object", "dict": "object", "map": "object",
    "null": "null", "none": "null",
}


def normalize_type(raw) -> str:
    """Map a type word from any of the supported sources to a JSON-schema type word.

    A list of types (`["string", "null"]`) gives its first non-null member; ToolAlpaca's
    `Array[string]` gives `array`; unknown or missing words give `string`.
    """
    if isinstance(raw, (list, tuple)):
        words = [normalize_type(t) for t in raw]
        return next((w for w in words if w != "null"), "null" if words else "string")
    if not isinstance(raw, str) or not raw.strip():
        return "string"
    word = raw.strip().lower()
    if word.startswith("array[") or word.startswith("list["):
        return "array"
    return TYPE_WORDS.get(word, "string")


def _normalize_property(raw, where: str, nested: bool = False) -> dict:
    if not isinstance(raw, dict):
        # Some hand-written schemas give just a type word, or just a description, per key.
        if isinstance(raw, str) and raw.strip().lower() in TYPE_WORDS:
            return {"type": normalize_type(raw), "description": ""}
        return {"type": "string", "description": str(raw)}
    prop = {"type": normalize_type(raw.get("type"))}
    desc = raw.get("description", "")
    if desc or not nested:  # array items rarely carry a description; don't invent one
        prop["description"] = desc if isinstance(desc, str) else json.dumps(desc, ensure_ascii=False)
    prop.update({k: v for k, v in raw.items() if k not in ("type", "description", "items", "properties", "required")})
    if isinstance(raw.get("items"), dict):
        prop["items"] = _normalize_property(raw["items"], where + ".items", nested=True)
    if isinstance(raw.get("properties"), dict):
        prop["properties"] = {str(k): _normalize_property(v, f"{where}.{k}") for k, v in raw["properties"].items()}
        if isinstance(raw.get("required"), list):
            prop["required"] = [k for k in raw["required"] if k in prop["properties"]]
    return prop


def _normalize_parameters(raw, where: str) -> dict:
    """Parameters block -> `{"type": "object", "properties": {...}, "required": [...]}`."""
    if raw is None:
        return {"type": "object", "properties": {}, "required": []}
    if isinstance(raw, list):  # ToolBench-style list of parameter dicts
        props, required = {}, []
        for i, p in enumerate(raw):
            if not isinstance(p, dict) or not isinstance(p.get("name"), str):
                raise ValueError(f"{where}: parameter list item {i} must be a dict with a 'name'; found {p!r:.200}")
            props[p["name"]] = _normalize_property({k: v for k, v in p.items() if k not in ("name", "required")}, f"{where}.{p['name']}")
            if p.get("required") is True:
                required.append(p["name"])
        return {"type": "object", "properties": props, "required": required}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: 'parameters' must be an object or a list; found {type(raw).__name__}: {raw!r:.200}")
    raw_props = raw.get("properties", {})
    if not isinstance(raw_props, dict):
        raise ValueError(f"{where}: 'parameters.properties' must be an object; found {type(raw_props).__name__}")
    props = {str(k): _normalize_property(v, f"{where}.{k}") for k, v in raw_props.items()}
    raw_req = raw.get("required", [])
    # Required keys that are not properties are dropped: a key nobody can see cannot be required.
    required = [k for k in raw_req if k in props] if isinstance(raw_req, list) else []
    return {"type": "object", "properties": props, "required": required}


# ----------------------------------------------------------------------------- ToolAlpaca

_ALPACA_PARAMS = re.compile(r"(?:^|\n)Parameters:\s*(\{.*?\})\s*(?:\nOutput:|$)", re.S)


def _alpaca_property(text: str) -> tuple[dict, bool]:
    """`"Required. string. Two-character code."` -> ({"type": "string", "description": ...}, True)."""
    rest = text.strip()
    required = False
    if rest.lower().startswith("required."):
        required, rest = True, rest[len("required."):].strip()
    m = re.match(r"([A-Za-z]+(?:\[[^\]]*\])?)\.\s*", rest)
    if m and (m.group(1).lower() in TYPE_WORDS or "[" in m.group(1)):
        return {"type": normalize_type(m.group(1)), "description": rest[m.end():].strip()}, required
    return {"type": "string", "description": rest}, required


def _from_alpaca(name: str, text: str) -> dict:
    m = _ALPACA_PARAMS.search(text)
    if m is None:
        raise ValueError(f"ToolAlpaca description of {name!r}: expected a 'Parameters: {{...}}' line; found {text!r:.200}")
    try:
        raw = json.loads(m.group(1))
    except json.JSONDecodeError as e:
        raise ValueError(f"ToolAlpaca description of {name!r}: the Parameters line is not JSON ({e})") from None
    props, required = {}, []
    for key, spec in raw.items():
        props[key], is_req = _alpaca_property(spec if isinstance(spec, str) else json.dumps(spec))
        if is_req:
            required.append(key)
    description = text[: m.start()].strip()
    return {"name": name, "description": description, "parameters": {"type": "object", "properties": props, "required": required}}


# ----------------------------------------------------------------------------- public API


def normalize_tool(raw, name: str | None = None) -> dict:
    """Any supported tool description -> the normal form (see the module docstring).

    `raw` may be a dict, JSON text of a dict, or a ToolAlpaca description string (then `name`
    is required). Raises ValueError naming what was expected and found.
    """
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("{"):
            try:
                return normalize_tool(json.loads(text), name)
            except json.JSONDecodeError:
                pass
        if name is None:
            raise ValueError(f"a tool given as text needs name=...; found text {text!r:.120}")
        return _from_alpaca(name, raw)
    if not isinstance(raw, dict):
        raise ValueError(f"a tool must be a dict (OpenAI/BFCL schema) or a description string; found {type(raw).__name__}: {raw!r:.200}")
    if raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        return normalize_tool(raw["function"], name)
    tool_name = raw.get("name", name)
    if not isinstance(tool_name, str) or not tool_name.strip():
        raise ValueError(f"a tool needs a non-empty string 'name'; found keys {sorted(raw)}")
    tool_name = tool_name.strip()
    description = raw.get("description", "")
    description = description if isinstance(description, str) else json.dumps(description, ensure_ascii=False)
    if "parameters" not in raw and _ALPACA_PARAMS.search(description):
        return _from_alpaca(tool_name, description)
    return {"name": tool_name, "description": description.strip(),
            "parameters": _normalize_parameters(raw.get("parameters"), f"tool {tool_name!r}")}


def normalize_tools(tools) -> list[dict]:
    """A tool list in any supported form -> list of normal-form tools, order kept.

    Accepts a list of tools, JSON text of one, a single tool dict, or ToolAlpaca's
    `Function_Description` dict `{name: description string}` (its `components` entry documents
    output formats, not a tool, and is skipped). A later tool with an already-seen name is
    dropped, so names stay unique.
    """
    if tools is None:
        return []
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as e:
            raise ValueError(f"tools given as text must be JSON (a list of tool schemas); {e}") from None
    if isinstance(tools, dict):
        if "name" in tools or "function" in tools:
            tools = [tools]
        else:  # ToolAlpaca Function_Description
            tools = [normalize_tool(text, name=key) for key, text in tools.items() if key != "components"]
    if not isinstance(tools, (list, tuple)):
        raise ValueError(f"tools must be a list of tool schemas; found {type(tools).__name__}")
    out, seen = [], set()
    for i, t in enumerate(tools):
        try:
            tool = normalize_tool(t)
        except ValueError as e:
            raise ValueError(f"tools[{i}]: {e}") from None
        if tool["name"] not in seen:
            seen.add(tool["name"])
            out.append(tool)
    return out


# ----------------------------------------------------------------------------- from a Python function

_DOC_SECTIONS = ("args:", "arguments:", "parameters:", "params:", "returns:", "return:", "raises:",
                 "yields:", "examples:", "example:", "note:", "notes:", "attributes:", "see also:")


def _json_type_of(hint) -> dict:
    """A Python type hint -> a JSON-schema property fragment (type, and items/enum where known)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _json_type_of(non_none[0]) if len(non_none) == 1 else {"type": "string"}
    if origin is typing.Literal:
        values = list(args)
        word = {bool: "boolean", int: "integer", float: "number"}.get(type(values[0]), "string") if values else "string"
        return {"type": word, "enum": values}
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple, set, frozenset):
        out = {"type": "array"}
        if args and args[0] is not Ellipsis:
            out["items"] = _json_type_of(args[0])
        return out
    if origin is dict or hint is dict:
        return {"type": "object"}
    return {"type": {str: "string", int: "integer", float: "number", bool: "boolean"}.get(hint, "string")}


def _parse_google_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Google-style docstring -> (description, {arg: description}).

    The description is the text before the first section header; `Args:` lines are
    `name (type): text` or `name: text`, with more-indented continuation lines.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    desc_lines, arg_docs, i = [], {}, 0
    while i < len(lines) and lines[i].strip().lower() not in _DOC_SECTIONS:
        desc_lines.append(lines[i])
        i += 1
    while i < len(lines):
        header = lines[i].strip().lower()
        i += 1
        if header not in ("args:", "arguments:", "parameters:", "params:"):
            continue
        current, base_indent = None, None
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            indent = len(line) - len(line.lstrip())
            if line.strip().lower() in _DOC_SECTIONS and indent == 0:
                break
            m = re.match(r"\s*\*{0,2}([A-Za-z_]\w*)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$", line)
            if m and (base_indent is None or indent <= base_indent):
                base_indent = indent
                current = m.group(1)
                arg_docs[current] = m.group(3).strip()
            elif current is not None:
                arg_docs[current] = (arg_docs[current] + " " + line.strip()).strip()
            i += 1
    return "\n".join(desc_lines).strip(), arg_docs


def tool_from_function(fn) -> dict:
    """A normal-form tool schema from a plain Python function.

    Uses the signature (parameters without a default are required; *args/**kwargs are
    skipped), the type hints (str/int/float/bool/list[...]/dict/Optional/Literal) and a
    Google-style docstring (the text before the first section -> description, `Args:` -> parameter descriptions).
    """
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        hints = dict(getattr(fn, "__annotations__", {}))
    description, arg_docs = _parse_google_docstring(inspect.getdoc(fn) or "")
    props, required = {}, []
    for pname, p in inspect.signature(fn).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or pname in ("self", "cls"):
            continue
        prop = _json_type_of(hints[pname]) if pname in hints else {"type": "string"}
        prop["description"] = arg_docs.get(pname, "")
        if p.default is p.empty:
            required.append(pname)
        elif p.default is None or isinstance(p.default, (str, int, float, bool)):
            prop["default"] = p.default
        props[pname] = prop
    return normalize_tool({"name": fn.__name__, "description": description,
                           "parameters": {"type": "object", "properties": props, "required": required}})
