"""The paper's prompt format (Table 13), in one place. SFT, PPO and evaluation all render here.

    System: Function:
    def get_weather(city: string, unit: string = None):
        \"\"\"
        Current weather for a city.

        Args:
        city (string): City name.
        unit (string): 'c' or 'f'.
        \"\"\"
    User: What's the weather in Paris?
    Assistant: get_weather(city="Paris")</s>
    Output: {"temp_c": 18}
    Assistant: It is 18 °C in Paris.</s>
    Assistant:

Messages are `Role: content` joined by "\\n"; every assistant turn in the history ends with the
EOS marker `</s>`; a generation prompt ends with "\\nAssistant:" and the model's completion
starts with a space. Message format = the trajectory record (docs/ARCHITECTURE.md):
`{"role": "user" | "tool" | "assistant" | "system", ...}`; an assistant message holds
`tool_call` ({name, arguments}), `tool_calls` (a list, for parallel calls, rendered as one
BFCL-style list `[f(a=1), g(b=2)]`) or `content` (a final answer). `"function"` is accepted as
an alias of `"tool"` (RoTBench). The first line is `System: <render_tools(tools)>` (left out
when there are no tools); a `system` message adds its own `System: <text>` line where it stands.

The literal `</s>` inside any rendered text (an HTML tag in a web page, a user's message) would
be read as EOS by the tokenizer, so it is written as `\\u003c/s>` instead: inside a call's
string values that is a valid JSON *and* Python escape (the parser reads back "</s>").
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from tl.schema import Call, normalize_tools

EOS_MARK = "</s>"
EOS_ESCAPE = "\\u003c/s>"
ROLE_HEADERS = {"system": "System", "user": "User", "tool": "Output", "function": "Output", "assistant": "Assistant"}


def escape_eos(text: str) -> str:
    """Replace the literal EOS marker so that only real turn ends are cut at by the tokenizer."""
    return text.replace(EOS_MARK, EOS_ESCAPE)


# ----------------------------------------------------------------------------- calls


def _value(v) -> str:
    return escape_eos(json.dumps(v, ensure_ascii=False))


def _format_one(call: Call) -> str:
    parts = []
    for k, v in call.arguments.items():
        # A key that is not a Python name ("content-type", "code:") goes in a `**{...}` literal,
        # which both Python and tl.parse accept, so every call round-trips.
        # Python keywords (`from`) are written plainly: tl.parse reads `f(from="x")`.
        parts.append(f"{k}={_value(v)}" if k.isidentifier() else f"**{{{_value(k)}: {_value(v)}}}")
    return f"{call.name}({', '.join(parts)})"


def _as_calls(call_or_calls) -> list[Call]:
    if isinstance(call_or_calls, (list, tuple)):
        return [Call.from_dict(c) for c in call_or_calls]
    return [Call.from_dict(call_or_calls)]


def format_calls_with_spans(call_or_calls) -> tuple[str, list[tuple[int, int]]]:
    """`format_call`'s text plus the (start, end) character span of each tool name in it."""
    calls = _as_calls(call_or_calls)
    if not calls:
        raise ValueError("format_call: expected at least one call; found an empty list")
    texts = [_format_one(c) for c in calls]
    if len(calls) == 1:
        return texts[0], [(0, len(calls[0].name))]
    spans, pos = [], 1
    for c, t in zip(calls, texts):
        spans.append((pos, pos + len(c.name)))
        pos += len(t) + 2  # ", "
    return "[" + ", ".join(texts) + "]", spans


def format_call(call_or_calls) -> str:
    """A call as the model writes it: `name(key="value", n=3)`, values as JSON literals.

    Accepts a `Call`, a `{"name", "arguments"}` dict, or a list of them; several calls are
    written as one BFCL-style list `[f(a=1), g(b="x")]`, a one-element list as a plain call.
    """
    return format_calls_with_spans(call_or_calls)[0]


# ----------------------------------------------------------------------------- tools


def _indent_continuations(text: str) -> str:
    return text.strip().replace("\n", "\n    ")


def render_tool(tool: dict, raw: bool = False) -> str:
    """One normal-form tool as the paper's Python-signature-with-docstring block. `raw` pastes
    the descriptions as written, as the authors' `mae.py` does, instead of stripping them and
    indenting their continuation lines."""
    indent = (lambda text: text) if raw else _indent_continuations
    params = tool["parameters"]
    props, required = params["properties"], params["required"]
    optional = [k for k in props if k not in required]
    sig = [f"{k}: {props[k]['type']}" for k in required] + [f"{k}: {props[k]['type']} = None" for k in optional]
    args = [f"    {k} ({props[k]['type']}): {indent(props[k].get('description', ''))}" for k in required + optional]
    return "\n".join([
        "Function:",
        f"def {tool['name']}({', '.join(sig)}):",
        '    """',
        f"    {indent(tool['description'])}",
        "",
        "    Args:",
        *args,
        '    """',
    ])


def render_tools(tools, raw: bool = False) -> str:
    """The system content: every tool's block (required parameters first, optional ones
    `= None`, JSON-schema type words), separated by a blank line. `tools` in any form
    `tl.schema.normalize_tools` accepts."""
    return escape_eos("\n\n".join(render_tool(t, raw) for t in normalize_tools(tools)))


# ----------------------------------------------------------------------------- conversations


@dataclass(frozen=True)
class Segment:
    """A piece of a rendered conversation; the texts of all segments concatenate to the prompt.

    kind: "context" (never trained: system, user, tool feedback, role headers), "call" (an
    assistant tool call, starting with the space after "Assistant:"), "answer" (an assistant
    final answer, also starting with the space) or "eos" (the EOS marker after each assistant
    turn). message_index: index in `messages` of the assistant message (None for context).
    call / name_span: the call and the (start, end) offsets of its tool name inside `text`; for
    a parallel turn these are the first call's, and `calls` / `name_spans` hold all of them.
    """

    text: str
    kind: str
    message_index: int | None = None
    call: Call | None = None
    name_span: tuple[int, int] | None = None
    calls: tuple[Call, ...] = ()
    name_spans: tuple[tuple[int, int], ...] = ()


def _assistant_calls(m: dict, where: str) -> list[Call]:
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


def _content_text(m: dict, where: str) -> str:
    content = m.get("content")
    if content is None:
        raise ValueError(f"{where}: expected 'content'; found keys {sorted(m)}")
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def render_segments(tools, messages, *, add_generation_prompt: bool, raw_tools: bool = False) -> list[Segment]:
    """The conversation as segments (see `Segment`); `"".join(s.text for s in segs)` equals
    `render_prompt(tools, messages, add_generation_prompt)`. Context segments are only ever cut
    right before a trained segment's leading space or right after an EOS marker, which is what
    the tokenizer contract in docs/ARCHITECTURE.md relies on.
    Raises ValueError naming the message index for malformed messages."""
    segments: list[Segment] = []
    context: list[str] = []

    def flush():
        if context:
            segments.append(Segment("".join(context), "context"))
            context.clear()

    tools = normalize_tools(tools)
    if tools:
        context.append("System: " + render_tools(tools, raw_tools))
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLE_HEADERS:
            found = m.get("role") if isinstance(m, dict) else type(m).__name__
            raise ValueError(f"{where}: expected a dict with role in {sorted(ROLE_HEADERS)}; found {found!r}")
        newline = "\n" if (segments or context) else ""
        header = ROLE_HEADERS[m["role"]] + ":"
        if m["role"] != "assistant":
            context.append(f"{newline}{header} {escape_eos(_content_text(m, where))}")
            continue
        context.append(newline + header)
        flush()
        calls = _assistant_calls(m, where)
        if calls:
            if m.get("content"):
                raise ValueError(f"{where}: an assistant message holds a call or a final answer, not both; found both")
            text, spans = format_calls_with_spans(calls)
            spans = tuple((s + 1, e + 1) for s, e in spans)  # +1: the leading space
            segments.append(Segment(" " + text, "call", i, calls[0], spans[0], tuple(calls), spans))
        else:
            segments.append(Segment(" " + escape_eos(_content_text(m, where)), "answer", i))
        segments.append(Segment(EOS_MARK, "eos", i))
    if add_generation_prompt:
        context.append(("\n" if (segments or context) else "") + "Assistant:")
    flush()
    return segments


PROMPT_FORMATS = ("project", "authors")


def render_prompt(tools, messages, add_generation_prompt: bool = True, prompt_format: str = "project") -> str:
    """The full prompt text in the paper's format (see the module docstring).

    prompt_format "authors": the template of the authors' `finetune.py`, for checkpoints their
    code trained: history turns joined by "\n" alone (no `</s>` after each assistant turn; only
    after the last message when there is no generation prompt) and tool descriptions pasted raw.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}; found {prompt_format!r}")
    authors = prompt_format == "authors"
    segments = render_segments(tools, messages, add_generation_prompt=add_generation_prompt, raw_tools=authors)
    text = "".join(s.text for s in segments if not (authors and s.kind == "eos"))
    return text + EOS_MARK if authors and not add_generation_prompt else text
