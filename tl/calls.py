"""Tool calls as text: the `Call` value, tool schemas in one normal form, and the paper's prompt
format (Table 13); SFT, PPO and evaluation all render here. Both formats: docs/ARCHITECTURE.md
("Tool schema", "Prompt format and EOS").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

EOS_MARK = "</s>"
EOS_ESCAPE = "\\u003c/s>"
ROLE_HEADERS = {
    "system": "System",
    "user": "User",
    "tool": "Output",
    "function": "Output",
    "assistant": "Assistant",
}
PROMPT_FORMATS = ("project", "authors")
_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(x):
    """`x` with lone surrogates (a JSON `"\\ud800"`, which UTF-8 cannot encode) replaced by U+FFFD."""
    if isinstance(x, str):
        return x if x.isascii() else _SURROGATE.sub("\ufffd", x)
    if isinstance(x, dict):
        return {valid_unicode(k): valid_unicode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [valid_unicode(v) for v in x]
    return x


def _json_text(text: str, what: str, **kw):
    """json.loads, or ValueError(`what` formatted with the decoder's error `e` and `kw`)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(what.format(e=e, **kw)) from None


@dataclass(frozen=True)
class Call:
    """One tool call: a name and keyword arguments (JSON values), always valid Unicode."""

    name: str
    arguments: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "name", valid_unicode(self.name))
        object.__setattr__(self, "arguments", valid_unicode(self.arguments))

    def to_dict(self) -> dict:
        return {"name": self.name, "arguments": dict(self.arguments)}

    @classmethod
    def from_dict(cls, d) -> Call:
        """A Call from `{"name", "arguments"}`; the arguments may be JSON text, and OpenAI's `function`
        wrapper and `parameters` key are read too."""
        if isinstance(d, Call):
            return d
        if not isinstance(d, dict):
            raise ValueError(
                "a tool call must be a dict with 'name' and 'arguments'; "
                f"found {type(d).__name__}: {d!r:.200}"
            )
        if isinstance(d.get("function"), dict):
            d = d["function"]
        name = d.get("name")
        args = d.get("arguments", d.get("parameters", {}))
        if not isinstance(name, str) or not name.strip():
            raise ValueError(
                f"a tool call needs a non-empty string 'name'; found keys {sorted(d)} with name={name!r:.100}"
            )
        if isinstance(args, str):
            if args.strip():
                what = "call {name!r}: 'arguments' is a string that is not JSON ({e}): {args!r:.200}"
                args = _json_text(args, what, name=name, args=args)
            else:
                args = {}
        if not isinstance(args or {}, dict):  # a falsy value (None, [], 0) reads as no arguments
            raise ValueError(f"call {name!r}: 'arguments' must be an object; found {type(args).__name__}")
        return cls(name.strip(), dict(args or {}))


# ----------------------------------------------------------------------------- tool schemas
TYPE_WORDS = {
    "string": "string",
    "str": "string",
    "text": "string",
    "any": "string",
    "integer": "integer",
    "int": "integer",
    "long": "integer",
    "number": "number",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "object": "object",
    "dict": "object",
    "map": "object",
    "null": "null",
    "none": "null",
}


def normalize_type(raw) -> str:
    """A type word -> a JSON-schema word (`["string", "null"]` -> string, `Array[x]` -> array, anything
    else -> string)."""
    if isinstance(raw, (list, tuple)):
        # a union: its first non-null type; null only if that is all it allows
        words = [normalize_type(t) for t in raw]
        return next((w for w in words if w != "null"), "null" if words else "string")
    word = raw.strip().lower() if isinstance(raw, str) else ""
    if word.startswith(("array[", "list[")):
        return "array"
    return TYPE_WORDS.get(word, "string")


def _text(x) -> str:
    return x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)


def _required(required, props: dict) -> list:
    """The required keys that are declared: a key nobody can see cannot be required."""
    if not isinstance(required, list):
        return []
    return [k for k in required if isinstance(k, str) and k in props]


_OWN_KEYS = ("type", "description", "items", "properties", "required")  # _property normalizes these itself


def _property(raw, nested: bool = False) -> dict:
    """One parameter's schema in the normal form; `nested` for an array's items."""
    if not isinstance(raw, dict):  # some hand-written schemas give just a type word or a description
        is_type = isinstance(raw, str) and raw.strip().lower() in TYPE_WORDS
        if is_type:
            return {"type": normalize_type(raw), "description": ""}
        return {"type": "string", "description": str(raw)}
    prop = {"type": normalize_type(raw.get("type"))}
    desc = raw.get("description", "")
    if desc or not nested:  # array items rarely carry a description; don't invent one
        prop["description"] = _text(desc)
    prop.update({k: v for k, v in raw.items() if k not in _OWN_KEYS})
    if isinstance(raw.get("items"), dict):
        prop["items"] = _property(raw["items"], nested=True)
    if isinstance(raw.get("properties"), dict):
        prop["properties"] = {str(k): _property(v) for k, v in raw["properties"].items()}
        if isinstance(raw.get("required"), list):
            prop["required"] = _required(raw["required"], prop["properties"])
    return prop


def normalize_tool(raw) -> dict:
    """One tool (a dict or its JSON text) in the normal form."""
    if isinstance(raw, str):
        raw = _json_text(raw, "a tool given as text must be a JSON object; found {raw!r:.120}", raw=raw)
    if not isinstance(raw, dict):
        raise ValueError(
            f"a tool must be a dict (OpenAI/BFCL schema); found {type(raw).__name__}: {raw!r:.200}"
        )
    if raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        raw = raw["function"]
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a tool needs a non-empty string 'name'; found keys {sorted(raw)}")
    params = raw.get("parameters") or {}
    if not isinstance(params, dict) or not isinstance(params.get("properties", {}), dict):
        raise ValueError(
            f"tool {name.strip()!r}: 'parameters' must be {{type, properties: {{...}}, required}}; "
            f"found {params!r:.200}"
        )
    props = {str(k): _property(v) for k, v in params.get("properties", {}).items()}
    return {
        "name": name.strip(),
        "description": _text(raw.get("description", "")).strip(),
        "parameters": {
            "type": "object",
            "properties": props,
            "required": _required(params.get("required", []), props),
        },
    }


def normalize_tools(tools) -> list[dict]:
    """A tool list (or its JSON text, or one tool) in the normal form; a repeated name is dropped."""
    if isinstance(tools, str):
        tools = _json_text(tools, "tools given as text must be JSON (a list of tool schemas); {e}")
    if isinstance(tools, dict):
        tools = [tools]
    elif not tools:
        tools = []
    if not isinstance(tools, (list, tuple)):
        raise ValueError(f"tools must be a list of tool schemas; found {type(tools).__name__}")
    out = {}
    for i, t in enumerate(tools):
        try:
            tool = normalize_tool(t)
        except ValueError as e:
            raise ValueError(f"tools[{i}]: {e}") from None
        out.setdefault(tool["name"], tool)
    return list(out.values())


# ----------------------------------------------------------------------------- rendering
def escape_eos(text: str) -> str:
    return text.replace(EOS_MARK, EOS_ESCAPE)


def _value(v) -> str:
    return escape_eos(json.dumps(v, ensure_ascii=False))


def format_calls_with_spans(calls) -> tuple[str, list[tuple[int, int]]]:
    """`format_call`'s text and the (start, end) span of each tool name in it."""
    if not isinstance(calls, (list, tuple)):
        calls = [calls]
    calls = [Call.from_dict(c) for c in calls]
    if not calls:
        raise ValueError("format_call: expected at least one call; found an empty list")
    texts = []
    for c in calls:
        # A key that is not a Python name ("content-type") goes in `**{...}`, which Python and tl.parse
        # read, so every call round-trips; keywords (`from`) are written plainly (tl.parse reads them).
        args = [
            f"{k}={_value(v)}" if k.isidentifier() else f"**{{{_value(k)}: {_value(v)}}}"
            for k, v in c.arguments.items()
        ]
        texts.append(f"{c.name}({', '.join(args)})")
    if len(calls) == 1:
        return texts[0], [(0, len(calls[0].name))]
    spans = []
    pos = 1  # after the list's "["
    for c, t in zip(calls, texts):
        spans.append((pos, pos + len(c.name)))
        pos += len(t) + 2  # ", "
    return "[" + ", ".join(texts) + "]", spans


def format_call(calls) -> str:
    """A call as the model writes it, `name(key="value", n=3)`; a list as `[f(a=1), g(b="x")]`."""
    return format_calls_with_spans(calls)[0]


def render_tool(tool: dict, raw: bool = False) -> str:
    """A tool as the paper's signature-with-docstring block (optional parameters last, `= None`);
    `raw` pastes descriptions unindented, as the authors' code does."""

    def indent(text):
        if raw:
            return text
        return text.strip().replace("\n", "\n    ")

    props = tool["parameters"]["properties"]
    required = tool["parameters"]["required"]
    order = required + [k for k in props if k not in required]
    sig = [f"{k}: {props[k]['type']}" + ("" if k in required else " = None") for k in order]
    args = [f"    {k} ({props[k]['type']}): {indent(props[k].get('description', ''))}" for k in order]
    return "\n".join(
        [
            "Function:",
            f"def {tool['name']}({', '.join(sig)}):",
            '    """',
            f"    {indent(tool['description'])}",
            "",
            "    Args:",
            *args,
            '    """',
        ]
    )


def render_tools(tools, raw: bool = False) -> str:
    """The system content: every tool's block, separated by a blank line."""
    return escape_eos("\n\n".join(render_tool(t, raw) for t in normalize_tools(tools)))


@dataclass(frozen=True)
class Segment:
    """A piece of a rendered conversation. kind: "context" (never trained), "call" / "answer" (an
    assistant turn, from the space after "Assistant:") or "eos"; name_spans: the calls' names in
    `text`."""

    text: str
    kind: str
    message_index: int | None = None
    calls: tuple[Call, ...] = ()
    name_spans: tuple[tuple[int, int], ...] = ()


def assistant_calls(m: dict, where: str = "message") -> list[Call]:
    """The calls of an assistant message (`tool_call` or `tool_calls`), else []."""
    raw = m.get("tool_calls")
    if raw is None and m.get("tool_call") is not None:
        raw = [m["tool_call"]]
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ValueError(f"{where}: 'tool_calls' must be a non-empty list; found {raw!r:.200}")
    try:
        return [Call.from_dict(c) for c in raw]
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _content(m: dict, where: str) -> str:
    if m.get("content") is None:
        raise ValueError(f"{where}: expected 'content'; found keys {sorted(m)}")
    return _text(m["content"])


def render_segments(
    tools, messages, *, add_generation_prompt: bool, raw_tools: bool = False
) -> list[Segment]:
    """The conversation as segments, context cut only before a trained segment's leading space or
    after an EOS (the tokenizer contract, docs/ARCHITECTURE.md)."""
    segments = []
    context = []  # context text not yet flushed into a segment

    def flush():
        if context:
            segments.append(Segment("".join(context), "context"))
            context.clear()

    tools = normalize_tools(tools)
    if tools:
        context.append("System: " + render_tools(tools, raw_tools))
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or m["role"] not in ROLE_HEADERS:
            found = m.get("role") if isinstance(m, dict) else type(m).__name__
            raise ValueError(f"{where}: expected a dict with role in {sorted(ROLE_HEADERS)}; found {found!r}")
        newline = "\n" if (segments or context) else ""  # no newline before the first header
        header = newline + ROLE_HEADERS[m["role"]] + ":"
        if m["role"] != "assistant":
            context.append(f"{header} {escape_eos(_content(m, where))}")
            continue
        context.append(header)
        flush()
        calls = assistant_calls(m, where)
        if calls:
            if m.get("content"):
                raise ValueError(
                    f"{where}: an assistant message holds a call or a final answer, not both; found both"
                )
            text, spans = format_calls_with_spans(calls)
            shifted = tuple((s + 1, e + 1) for s, e in spans)  # past the leading space
            segments.append(Segment(" " + text, "call", i, tuple(calls), shifted))
        else:
            segments.append(Segment(" " + escape_eos(_content(m, where)), "answer", i))
        segments.append(Segment(EOS_MARK, "eos", i))
    if add_generation_prompt:
        context.append(("\n" if (segments or context) else "") + "Assistant:")
    flush()
    return segments


def render_prompt(tools, messages, add_generation_prompt: bool = True, prompt_format: str = "project") -> str:
    """The prompt text. "authors": the authors' finetune.py template (for checkpoints it trained):
    no `</s>` after history turns, only after a last message, and raw tool descriptions."""
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}; found {prompt_format!r}")
    authors = prompt_format == "authors"
    segments = render_segments(
        tools, messages, add_generation_prompt=add_generation_prompt, raw_tools=authors
    )
    text = "".join(s.text for s in segments if not (authors and s.kind == "eos"))
    if authors and not add_generation_prompt:
        return text + EOS_MARK
    return text
