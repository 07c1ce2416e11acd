"""Prompt rendering: the paper's exact format, and segments that tile it."""

import pytest

from tl.calls import EOS_MARK, Call, format_call, render_prompt, render_segments, render_tools
from tl.parse import parse

TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "unit": {"type": "string", "description": "'c' or 'f'."},
                "city": {"type": "string", "description": "City name."},
            },
            "required": ["city"],
        },
    },
    {
        "type": "function",
        "function": {  # OpenAI wrapper and BFCL type words render the same way
            "name": "get_time",
            "description": "Local time in a zone.",
            "parameters": {
                "type": "dict",
                "properties": {
                    "tz": {"type": "string", "description": "IANA zone."},
                    "offset": {"type": "float", "description": "Hours to add."},
                },
                "required": ["tz"],
            },
        },
    },
]
MESSAGES = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "tool_call": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}},
    {"role": "tool", "content": '{"temp_c": 18}'},
    {"role": "assistant", "content": "It is 18 °C in Paris."},
    {"role": "user", "content": "And the time there?"},
]

GOLDEN = '''System: Function:
def get_weather(city: string, unit: string = None):
    """
    Current weather for a city.

    Args:
    city (string): City name.
    unit (string): 'c' or 'f'.
    """

Function:
def get_time(tz: string, offset: number = None):
    """
    Local time in a zone.

    Args:
    tz (string): IANA zone.
    offset (number): Hours to add.
    """
User: What's the weather in Paris?
Assistant: get_weather(city="Paris", unit="c")</s>
Output: {"temp_c": 18}
Assistant: It is 18 °C in Paris.</s>
User: And the time there?
Assistant:'''


def test_golden_two_tool_prompt():
    assert render_prompt(TOOLS, MESSAGES) == GOLDEN
    assert render_prompt(TOOLS, MESSAGES, add_generation_prompt=False) == GOLDEN[: -len("\nAssistant:")]


def test_segments_tile_the_prompt_and_mark_trained_text():
    for gen in (True, False):
        segs = render_segments(TOOLS, MESSAGES, add_generation_prompt=gen)
        assert "".join(s.text for s in segs) == render_prompt(TOOLS, MESSAGES, add_generation_prompt=gen)
    segs = render_segments(TOOLS, MESSAGES, add_generation_prompt=True)
    assert [s.kind for s in segs] == ["context", "call", "eos", "context", "answer", "eos", "context"]
    call, answer = segs[1], segs[4]
    assert call.text == ' get_weather(city="Paris", unit="c")' and call.message_index == 1
    assert call.calls == (Call("get_weather", {"city": "Paris", "unit": "c"}),)
    assert call.text[slice(*call.name_spans[0])] == "get_weather"
    assert answer.text == " It is 18 °C in Paris." and answer.message_index == 3 and answer.calls == ()
    assert segs[2].text == segs[5].text == EOS_MARK and segs[2].message_index == 1
    # Tokenizer contract: a context segment ends right before a trained segment's space or at EOS.
    for prev, nxt in zip(segs, segs[1:]):
        if nxt.kind in ("call", "answer"):
            assert prev.text.endswith("Assistant:") and nxt.text.startswith(" ")
        if nxt.kind == "context":
            assert prev.kind == "eos"


def test_parallel_calls_render_as_one_list_with_every_name_span():
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                Call("get_weather", {"city": "Rome"}),
            ],
        },
    ]
    segs = render_segments(TOOLS, messages, add_generation_prompt=False)
    call = segs[1]
    assert call.text == ' [get_weather(city="Paris"), get_weather(city="Rome")]'
    assert [call.text[s:e] for s, e in call.name_spans] == ["get_weather", "get_weather"]
    assert len(call.calls) == 2
    assert parse(call.text).calls == list(call.calls)


def test_format_call_values_are_json_literals_and_round_trip():
    one = Call("f", {"s": "x", "n": 3, "b": True, "z": None, "l": [1.5, "é"]})
    assert format_call(one) == 'f(s="x", n=3, b=true, z=null, l=[1.5, "é"])'
    several = [Call("f", {"a": 1}), {"name": "mod.g", "arguments": {"b": "x"}}]
    assert format_call(several) == '[f(a=1), mod.g(b="x")]'
    # Keys real schemas use that are not Python names, and the EOS marker inside a value.
    awkward = Call(
        "preferred-routes_get", {"from": "A", "code:": 1, "html": "<s>old</s>", "d": {"k": [None]}}
    )
    text = format_call(awkward)
    assert EOS_MARK not in text
    assert parse(text).calls == [awkward]


def test_system_message_eos_escaping_and_no_tools():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say </s> please"},
        {"role": "function", "content": {"ok": 1}},
    ]
    text = render_prompt([], messages)
    assert text == 'System: Be brief.\nUser: Say \\u003c/s> please\nOutput: {"ok": 1}\nAssistant:'
    header = "Function:\ndef get_weather(city: string, unit: string = None):"
    assert render_tools(TOOLS[:1]).startswith(header)


def test_malformed_messages_name_the_index():
    with pytest.raises(ValueError, match=r"messages\[1\]: expected a dict with role"):
        render_prompt(TOOLS, [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}])
    both = {"role": "assistant", "content": "hi", "tool_call": {"name": "f", "arguments": {}}}
    with pytest.raises(ValueError, match=r"messages\[0\]: .*not both"):
        render_prompt(TOOLS, [both])
    with pytest.raises(ValueError, match=r"messages\[0\]: expected 'content'"):
        render_prompt(TOOLS, [{"role": "user"}])


def test_authors_prompt_format_byte_for_byte():
    # Written from the authors' template (finetune.py's chat template, mae.py's tool blocks):
    # messages as "Role: content" joined by "\n", "\nAssistant:" as the generation prompt, "</s>"
    # only after the last message of a training sample, descriptions pasted as they are.
    tools = [
        {
            "name": "get_weather",
            "description": "Weather now.\nFrom a live API.",
            "parameters": {
                "type": "object",
                "required": ["city"],
                "properties": {
                    "city": {"type": "string", "description": "City name,\ne.g. Paris."},
                    "unit": {"type": "string", "description": "c or f"},
                },
            },
        },
        {"name": "ping", "description": "Ping.", "parameters": {"type": "object", "properties": {}}},
    ]
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"role": "tool", "content": '{"temp_c": 18}'},
        {"role": "assistant", "content": "It is 18 °C."},
        {"role": "user", "content": "And ping?"},
    ]
    system = (
        "System: Function:\n"
        "def get_weather(city: string, unit: string = None):\n"
        '    """\n'
        "    Weather now.\n"
        "From a live API.\n"
        "\n"
        "    Args:\n"
        "    city (string): City name,\n"
        "e.g. Paris.\n"
        "    unit (string): c or f\n"
        '    """\n'
        "\n"
        "Function:\n"
        "def ping():\n"
        '    """\n'
        "    Ping.\n"
        "\n"
        "    Args:\n"
        '    """'
    )
    history = (
        '\nUser: Weather in Paris?\nAssistant: get_weather(city="Paris")\nOutput: {"temp_c": 18}\n'
        "Assistant: It is 18 °C.\nUser: And ping?"
    )
    assert render_prompt(tools, messages, prompt_format="authors") == system + history + "\nAssistant:"
    # a training sample: </s> after its last message only
    sample = render_prompt(tools, messages[:4], add_generation_prompt=False, prompt_format="authors")
    assert sample == system + history[: history.index("\nUser: And")] + "</s>"
    project = render_prompt(tools, messages)
    assert project.count(EOS_MARK) == 2 and "    Weather now.\n    From a live API." in project
    with pytest.raises(ValueError, match="prompt_format"):
        render_prompt(tools, messages, prompt_format="chatml")
