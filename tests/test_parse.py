"""The one parser: every format, errors vs plain answers, and a fuzz test with a canary."""

import json
import os
import random

import pytest

from tl.calls import Call, format_call
from tl.classify import classify, classify_feedback
from tl.parse import MAX_CHARS, Parsed, parse, parse_literal

CANARY_STATE = "untouched"  # attack strings try to change this global


@pytest.mark.parametrize(
    "text, calls",
    [
        # the project's Python-call syntax: both quote styles, JSON and Python literal names
        (
            "get_weather(city=\"Paris\", unit='c', n=3, x=-1.5, ok=true, no=False, z=null, w=None)",
            [
                Call(
                    "get_weather",
                    {
                        "city": "Paris",
                        "unit": "c",
                        "n": 3,
                        "x": -1.5,
                        "ok": True,
                        "no": False,
                        "z": None,
                        "w": None,
                    },
                )
            ],
        ),
        ('f(l=[1, (2, 3)], d={"k": {"j": []}})', [Call("f", {"l": [1, [2, 3]], "d": {"k": {"j": []}}})]),
        ("f()", [Call("f", {})]),
        ("f(a=1)\ng(b=2)", [Call("f", {"a": 1}), Call("g", {"b": 2})]),
        ("```python\nf(a=1)\n```", [Call("f", {"a": 1})]),
        (' get_weather(city="Paris")</s> trailing text', [Call("get_weather", {"city": "Paris"})]),
        # BFCL lists with dotted names
        ('[f(a=1), mod.g(b="x")]', [Call("f", {"a": 1}), Call("mod.g", {"b": "x"})]),
        ("[math.factorial(number=5)]", [Call("math.factorial", {"number": 5})]),
        # names and keys Python rejects but real schemas use
        ('f(from="A", to="B")', [Call("f", {"from": "A", "to": "B"})]),
        ("preferred-routes_get(a=1)", [Call("preferred-routes_get", {"a": 1})]),
        ('f(**{"code:": 1}, b=2)', [Call("f", {"code:": 1, "b": 2})]),
        # JSON objects: arguments as object or JSON string, "parameters", lists, OpenAI wrapper
        ('{"name": "f", "arguments": {"a": 1}}', [Call("f", {"a": 1})]),
        ('{"name": "f", "arguments": "{\\"a\\": 1}"}', [Call("f", {"a": 1})]),
        ('{"name": "f", "parameters": {"a": [true]}}', [Call("f", {"a": [True]})]),
        ("{'name': 'f', 'arguments': {'a': None}}", [Call("f", {"a": None})]),
        (
            '[{"name": "f", "arguments": {}}, '
            '{"type": "function", "function": {"name": "g", "arguments": "{}"}}]',
            [Call("f", {}), Call("g", {})],
        ),
        # ReAct (RoTBench / ToolAlpaca): JSON, Python-dict-ish, JSON-string and empty inputs
        (
            'Thought: I need the weather.\nAction: get_weather\nAction Input: {"city": "Paris"}',
            [Call("get_weather", {"city": "Paris"})],
        ),
        (
            "Thought:\nAction: get_weather\nAction Input: {'city': 'Paris'}\nObservation: sunny",
            [Call("get_weather", {"city": "Paris"})],
        ),
        (
            'Action: CountryCountryInfo\nAction Input: "{\\"countryCode\\": \\"CN\\"}"',
            [Call("CountryCountryInfo", {"countryCode": "CN"})],
        ),
        ("Thought:\nAction: get_random_event\nAction Input: ", [Call("get_random_event", {})]),
        ("Thought:\nAction: get_random_event", [Call("get_random_event", {})]),
        ('Action: get_weather(city="Paris")', [Call("get_weather", {"city": "Paris"})]),
    ],
)
def test_formats(text, calls):
    parsed = parse(text)
    assert parsed.kind == "calls", parsed.error
    assert parsed.calls == calls


@pytest.mark.parametrize(
    "text",
    [
        "It is 18 °C in Paris.",
        "",
        "   ",
        "Paris (France) is lovely.",
        "42",
        "[1, 2]",
        "[]",
        "Yes",
        "Thought: done.\nFinal Answer: 42",
    ],
)
def test_plain_answers_are_no_call(text):
    assert parse(text) == Parsed("no_call")


@pytest.mark.parametrize(
    "text, why",
    [
        ('get_weather(city="Paris"', "never closed"),
        ("f(1, 2)", "positional"),
        ("f(a=x)", "not a literal"),
        ("f(a=1, a=2)", "given twice"),
        ("f(a=1e999)", "non-finite"),
        ('f(a=f"{x}")', "not a literal"),
        ("f(a={1, 2})", "not a literal"),
        ('{"city": "Paris"}', "name"),
        ('Action: get_weather\nAction Input: {"city": ', "neither JSON nor"),
        ("Action: get weather now!\nAction Input: {}", "expected a tool name"),
        ("(" * 5000, "nested deeper"),
        ("[" * 200 + "]" * 200, "nested deeper"),
        ("f(a='" + "x" * MAX_CHARS + "')", "longer than"),
        (b"f(a=1)", "expected model output as str"),
    ],
)
def test_errors_are_reported_not_raised(text, why):
    parsed = parse(text)
    assert parsed.kind == "error" and parsed.calls == []
    assert why in parsed.error


def test_deep_but_bounded_nesting_still_parses():
    value = []
    for _ in range(80):
        value = [value]
    assert parse(format_call(Call("f", {"a": value}))).calls == [Call("f", {"a": value})]


def test_parse_literal_is_safe_and_bounded():
    assert parse_literal("{'error': 'x', 'n': [1, true]}") == {"error": "x", "n": [1, True]}
    for bad in ["__import__('os')", "{'a': open('x')}", "[" * 1000]:
        with pytest.raises(ValueError):
            parse_literal(bad)


ATTACKS = [
    "__import__('os').system('touch CANARY')",
    "open('CANARY', 'w')",
    "f(a=open('CANARY', 'w'))",
    "f(a=__import__('os').system('touch CANARY'))",
    "exec(\"open('CANARY','w')\")",
    "eval(\"__import__('os').system('touch CANARY')\")",
    "[f(a=1), globals().update(CANARY_STATE='pwned')]",
    "f(**globals().update(CANARY_STATE='pwned'))",
    "f(a=(lambda: open('CANARY', 'w'))())",
    "Action: f\nAction Input: __import__('os').system('touch CANARY')",
    "{'name': open('CANARY', 'w'), 'arguments': {}}",
    "compile('open(\"CANARY\",\"w\")', 'x', 'exec')",
]
ALPHABET = list("()[]{}\"'=,.:;\\\n _-+*/#@!abcxyzAZ0123456789") + [
    "Action:",
    "Action Input:",
    "Thought:",
    "</s>",
    "true",
    "null",
    "None",
    "__import__",
    "open(",
    "f(",
    "**{",
    "\\u003c",
]


def _mutate(s: str, rng: random.Random) -> str:
    """1-4 random edits: insert a piece of ALPHABET, delete a character, cut the rest, duplicate a
    slice, or insert a run of one piece."""
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(s) + 1)
        op = rng.randrange(5)
        if op == 0:
            s = s[:i] + rng.choice(ALPHABET) + s[i:]
        elif op == 1:
            s = s[:i] + s[i + 1 :]
        elif op == 2:
            s = s[:i]
        elif op == 3:
            j = rng.randrange(len(s) + 1)
            s = s[:i] + s[min(i, j) : max(i, j)] + s[i:]  # duplicate a slice
        else:
            s = s[:i] + rng.choice(ALPHABET) * rng.randint(1, 120) + s[i:]
    return s


def test_fuzz_never_raises_and_executes_nothing(tmp_path, monkeypatch, shared_data_or_none):
    monkeypatch.chdir(tmp_path)  # anything that ran `open('CANARY', 'w')` would create it here
    rng = random.Random(0)
    seeds = ATTACKS + [
        format_call(Call("get_weather", {"city": "Paris", "unit": "c", "days": [1, 2], "x": {"k": None}})),
        format_call([Call("f", {"from": 1}), Call("a-b.c", {"code:": "</s>"})]),
        'Thought: ok\nAction: get_weather\nAction Input: {"city": "Paris"}',
        '[{"name": "f", "arguments": "{\\"a\\": [1, 2]}"}]',
    ]
    if shared_data_or_none is not None:  # real gold calls from RoTBench
        records = json.loads((shared_data_or_none / "RoTBench" / "First_Turn" / "clean.json").read_text())
        seeds += [ans for r in records[:40] for ans in r["conversations"][-1]["value"][:2]]
    strings = list(seeds)
    strings += [_mutate(rng.choice(seeds), rng) for _ in range(3000)]
    strings += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60))) for _ in range(1500)]
    tools = [
        {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    kinds = set()
    for s in strings:
        parsed = parse(s)
        kinds.add(parsed.kind)
        assert parsed.kind in ("calls", "no_call", "error")
        assert (parsed.kind == "calls") == bool(parsed.calls)
        assert (parsed.kind == "error") == (parsed.error is not None)
        for c in parsed.calls:
            assert isinstance(c.name, str) and c.name and isinstance(c.arguments, dict)
            json.dumps(c.arguments)  # values are plain JSON
        classify_feedback(s)
    for s in strings[:800]:
        classify(s, Call("get_weather", {"city": "Paris"}), tools)
    assert kinds == {"calls", "no_call", "error"}
    assert not os.path.exists("CANARY") and not (tmp_path / "CANARY").exists()
    assert CANARY_STATE == "untouched"


@pytest.fixture
def shared_data_or_none(request):
    try:
        return request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        return None
