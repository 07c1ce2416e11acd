"""BFCL's own checker's rules as the project applies them (tasks.bfcl): its decoder, its
value rules, the live categories and the --bfcl_json_literals switch. Each case is one kind of
disagreement a side-by-side run against bfcl_eval found (experiments/official_checkers.py)."""

import json

import pytest

import evaluate
from tasks import bfcl, gold_output, load
from tasks.run import score
from tl.calls import Call
from tl.parse import parse


@pytest.mark.parametrize(
    "text, calls",
    [
        ("[f(type=plus)]", [Call("f", {"type": "plus"})]),  # a bare identifier is a string
        ("[f(a=true, b=null)]", [Call("f", {"a": "true", "b": "null"})]),  # so are JSON literals
        ("[f(a=True, b=None)]", [Call("f", {"a": True, "b": None})]),
        ("[f(a=1)", [Call("f", {"a": 1})]),  # a missing ] is added
        ("f(a=1)]", [Call("f", {"a": 1})]),
        ("f(a=1), g.h(b=[1, 2])", [Call("f", {"a": 1}), Call("g.h", {"b": [1, 2]})]),
        ("```\n[f(a=1)]\n```", [Call("f", {"a": 1})]),
        ("[f(1, a=(1, 2))]", [Call("f", {"a": (1, 2)})]),  # positional dropped, a tuple kept
        (
            "[f(a=g(), b=x[1], c=g(k=1), d=..., e=+5)]",
            [Call("f", {"a": "g()", "b": "x[1]", "c": {"g": {"k": 1}}, "d": "...", "e": -5})],
        ),
        (
            '[f(a=9 + 1, b=2 ** 0.5 * 2, c="a" + "b", d=[1] + [2], e="ab" * 2)]',
            [Call("f", {"a": 10, "b": 2**0.5 * 2, "c": "ab", "d": [1, 2], "e": "abab"})],
        ),
    ],
)
def test_decode_reads_as_bfcl(text, calls):
    parsed = bfcl.decode(text)
    assert parsed.kind == "calls" and parsed.calls == calls


@pytest.mark.parametrize(
    "text, kind",
    [
        ("f(a=1)\ng(b=2)", "error"),  # calls on several lines do not decode
        # BFCL eval()s expressions; nothing is evaluated here: arithmetic is computed on numbers (and + *
        # on strings, lists) only
        ("[f(a=x + 1)]", "error"),
        ("[f(a=1 << 4)]", "error"),
        ('[f(a="ab" * 99999999)]', "error"),
        ("[f(a=1 / 0)]", "error"),
        ("[f(a=9 ** 99999999)]", "error"),
        ("[f(a=lambda: 1)]", "error"),
        ("[f(a=1)] done", "error"),
        ("Thought:\nAction: f\nAction Input: {}", "error"),
        ("I cannot help.", "no_call"),
        ("[]", "no_call"),
    ],
)
def test_decode_rejects_what_bfcl_rejects(text, kind):
    assert bfcl.decode(text).kind == kind


def test_the_shared_parser_stays_strict():
    # the BFCL leniencies live in the BFCL path only: training, PPO and the other benchmarks keep these
    # unreadable
    assert parse("f(type=plus)").kind == "error"
    assert parse("[f(a=1)").kind == "error"
    assert parse("f(a=true)").calls == [Call("f", {"a": True})]
    assert bfcl.decode("f(a=true)", json_literals=True).calls == [Call("f", {"a": True})]


@pytest.mark.parametrize(
    "value, acceptable, prop, ok",
    [
        ([133, 34], [[133.0, 34.0]], {"type": "array", "items": {"type": "float"}}, False),  # nested types
        (
            [133, 34],
            [[133, 34]],
            {"type": "array", "items": {"type": "float"}},
            True,
        ),  # the answer's own type
        # "" lets any array pass the type check...
        ([133.0], [[133.0], ""], {"type": "array", "items": {"type": "integer"}}, True),
        ([], [[1], ""], {"type": "array", "items": {"type": "integer"}}, True),  # ... and [] matches ""
        (5, [5.0], {"type": "float"}, True),
        (5.0, [5], {"type": "integer"}, False),
        (True, [1], {"type": "integer"}, False),
        ("New York, NY", ["new york ny"], {"type": "string"}, True),
        ((1, 2), [[1, 2]], {"type": "tuple", "items": {"type": "integer"}}, True),
        ((1, 2), [[1, 2]], {"type": "array", "items": {"type": "integer"}}, False),
        ("x", ["x"], {"type": "integer"}, True),  # a "variable" answer
        ({"k": "X"}, [{"k": ["x"], "j": ["", 1]}], {"type": "dict"}, True),
        ({"k": "X", "z": 1}, [{"k": ["x"]}], {"type": "dict"}, False),
        ({"p": {"lat": 1.0}}, [{"p": [{"lat": 1.0}]}], {"type": "dict"}, True),  # a literal nested dict
        ([{"x": 1.0}], [[{"x": [1.0]}]], {"type": "array", "items": {"type": "dict"}}, True),
    ],
)
def test_value_rules(value, acceptable, prop, ok):
    assert bfcl.value_ok(value, acceptable, prop) is ok


def jsonl(path, records):
    """Write records as JSON Lines."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


FN = {
    "name": "set_alarm",
    "description": "Set an alarm.",
    "parameters": {
        "type": "dict",
        "required": ["time"],
        "properties": {
            "time": {"type": "string", "description": "t"},
            "loud": {"type": "boolean", "description": "l"},
            "where": {"type": "dict", "description": "w", "properties": {"room": {"type": "string"}}},
        },
    },
}


@pytest.fixture
def live_dir(tmp_path):
    (tmp_path / "possible_answer").mkdir()

    def q(i, cat):
        """A question of category `cat`, id `<cat>_<i>`."""
        return {
            "id": f"{cat}_{i}",
            "question": [[{"role": "user", "content": "Alarm at 7, loudly."}]],
            "function": [FN],
        }

    jsonl(tmp_path / "BFCL_v3_live_simple.json", [q(0, "live_simple")])
    jsonl(
        tmp_path / "possible_answer" / "BFCL_v3_live_simple.json",
        [
            {
                "id": "live_simple_0",
                "ground_truth": [
                    {
                        "set_alarm": {
                            "time": ["7:00"],
                            "loud": [True],
                            "where": [{"room": [{"name": "bedroom"}]}],
                        }
                    }
                ],
            }
        ],
    )
    # the package's v4 names too; the answer's id differs, as in the public live_multiple
    jsonl(tmp_path / "BFCL_v4_live_multiple.json", [q("1052-79-0", "live_multiple")])
    jsonl(
        tmp_path / "possible_answer" / "BFCL_v4_live_multiple.json",
        [
            {
                "id": "live_multiple_1052-279-0",
                "ground_truth": [{"set_alarm": {"time": ["7:00"], "loud": ["", False]}}],
            }
        ],
    )
    jsonl(tmp_path / "BFCL_v3_live_irrelevance.json", [q(0, "live_irrelevance")])
    jsonl(tmp_path / "BFCL_v3_live_relevance.json", [q(0, "live_relevance")])
    return tmp_path


def test_live_categories_load_pair_by_position_and_score_by_bfcls_rules(live_dir):
    (unit,) = load("bfcl", live_dir)
    items = {it.category: it for it in unit.items}
    assert sorted(items) == ["live_irrelevance", "live_multiple", "live_relevance", "live_simple"]
    # paired by position
    assert items["live_multiple"].id == "live_multiple_1052-79-0" and items["live_multiple"].gold
    # a literal nested dict among the answers: no TypeError
    gold = {it.id: gold_output(it) for it in unit.items}
    assert gold["live_simple_0"] == "[set_alarm(time='7:00', loud=True, where={'room': {'name': 'bedroom'}})]"
    metrics, _ = score(unit.items, gold)
    assert {c: m["CF"] for c, m in metrics["by_category"].items()} == dict.fromkeys(items, 100.0)
    cases = {  # (category, output) -> right?
        ("live_relevance", "set_alarm()"): True,  # any call counts
        ("live_relevance", "I would set an alarm."): False,
        ("live_irrelevance", "set_alarm(time='7:00')"): False,
        ("live_irrelevance", "No tool fits."): True,
        ("live_multiple", "set_alarm(time='7:00', loud=false)"): False,  # false reads as the string "false"
        ("live_multiple", "set_alarm(time='7:00', loud=False)"): True,
    }
    for (category, output), right in cases.items():
        assert score([items[category]], {items[category].id: output})[0]["CF"] == 100.0 * right, output
    # --bfcl_json_literals: the project's own format (JSON literals) reads as booleans
    item = items["live_multiple"]
    outputs = {item.id: "set_alarm(time='7:00', loud=false)"}
    assert score([item], outputs, bfcl_json_literals=True)[0]["CF"] == 100.0


def test_evaluate_prints_bfcl_per_category_and_takes_the_switch(live_dir, tmp_path, capsys):
    preds = tmp_path / "preds.jsonl"
    outputs = [
        ("live_simple_0", 'set_alarm(time="7:00", loud=true, where={"room": {"name": "bedroom"}})'),
        ("live_multiple_1052-79-0", 'set_alarm(time="7:00")'),
        ("live_irrelevance_0", "No."),
        ("live_relevance_0", "set_alarm()"),
    ]
    jsonl(preds, [{"id": i, "output": o} for i, o in outputs])
    args = [
        "--benchmark",
        "bfcl",
        "--data",
        str(live_dir),
        "--predictions",
        str(preds),
        "--out",
        str(tmp_path / "o"),
    ]
    assert evaluate.main(args)["bfcl"]["CF"] == 75.0
    table = capsys.readouterr().out
    assert "| bfcl / live_simple | 1 | 100.00 | 100.00 | 0.00 |" in table
    assert "| bfcl / live_relevance | 1 |" in table
    assert evaluate.main(args + ["--bfcl_json_literals"])["bfcl"]["CF"] == 100.0
