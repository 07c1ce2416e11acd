"""Call classification and the paper's reward: hand-written cases per category and mode."""

import pytest

from tasks.bfcl import value_ok
from tl.calls import Call
from tl.classify import (
    CONTENT_ERROR,
    CORRECT,
    NO_CALL,
    PARAM_HALLUCINATION,
    PARAM_MISSING,
    PARAM_REDUNDANT,
    TOOL_HALLUCINATION,
    UNPARSABLE,
    WRONG_TOOL,
    call_reward,
    classify,
    classify_calls,
    param_penalty,
    split_name,
)
from tl.parse import parse


def reward(pred, gold, tools, mode="strict"):
    return call_reward(classify(pred, gold, tools, mode=mode))


TOOLS = [
    {
        "name": "get_weather_current",
        "description": "Current weather.",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string"},
                "days": {"type": "integer"},
            },
        },
    },
    {
        "name": "get_weather_forecast",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"name": "fetch_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
    {"name": "finish", "parameters": {"type": "object", "properties": {"answer": {"type": "string"}}}},
]
GOLD = Call("get_weather_current", {"city": "Paris"})


@pytest.mark.parametrize(
    "pred, category, value",
    [
        ('get_weather_current(city="Paris")', CORRECT, 1.0),
        ('get_weather_current(city="Lyon")', CONTENT_ERROR, -0.25),
        ('fetch_time(tz="Europe/Paris")', WRONG_TOOL, -1.5),
        ('get_wether(city="Paris")', TOOL_HALLUCINATION, -2.0),
        ('get_weather_current(city="Paris"', UNPARSABLE, -2.0),
        ("It is sunny in Paris.", NO_CALL, -2.0),
        # R_p: every combination of the three parameter flags
        ('get_weather_current(city="Paris", unit="c")', PARAM_REDUNDANT, -0.5),  # redundant
        ("get_weather_current()", PARAM_MISSING, -0.5),  # missing
        ('get_weather_current(city="Paris", wind=1)', PARAM_HALLUCINATION, -0.8),  # hallucinated
        ('get_weather_current(unit="c")', PARAM_MISSING, -1.0),  # redundant + missing
        (
            'get_weather_current(city="Paris", unit="c", wind=1)',
            PARAM_HALLUCINATION,
            -1.3,
        ),  # halluc. + redundant
        ("get_weather_current(wind=1)", PARAM_HALLUCINATION, -1.3),  # halluc. + missing
        ('get_weather_current(unit="c", wind=1)', PARAM_HALLUCINATION, -1.8),  # all three
    ],
)
def test_reward_table(pred, category, value):
    assert classify(pred, GOLD, TOOLS).category == category
    assert reward(pred, GOLD, TOOLS) == value


def test_param_penalty_values():
    assert [
        param_penalty(h, r, m)
        for h, r, m in [(0, 1, 0), (1, 0, 0), (0, 1, 1), (1, 1, 0), (1, 0, 1), (1, 1, 1)]
    ] == [-0.5, -0.8, -1.0, -1.3, -1.3, -1.8]


def test_details_hold_the_flags_and_ts_pi_cf():
    d = classify('get_weather_current(unit="c", wind=1)', GOLD, TOOLS).details
    assert (d["hallucinated"], d["redundant"], d["missing"]) == (["wind"], ["unit"], ["city"])
    assert (d["ts"], d["pi"], d["cf"]) == (True, False, False)
    d = classify('get_weather_current(city="Lyon")', GOLD, TOOLS).details
    assert d["wrong_values"] == ["city"] and (d["ts"], d["pi"], d["cf"]) == (True, True, False)
    d = classify('get_weather_current(city="Paris")', GOLD, TOOLS).details
    assert (d["ts"], d["pi"], d["cf"]) == (True, True, True)
    d = classify('fetch_time(tz="x")', GOLD, TOOLS).details
    assert (d["predicted_name"], d["gold_name"], d["ts"]) == ("fetch_time", "get_weather_current", False)


def test_wrong_tool_token_statistics_table1():
    d = classify('get_weather_forecast(city="Paris")', GOLD, TOOLS).details
    assert split_name("get_weather_forecast") == ["get", "_weather", "_forecast"]
    assert (d["first_token_differs"], d["shares_prefix"], d["common_prefix_tokens"]) == (False, True, 2)
    d = classify('fetch_time(tz="x")', GOLD, TOOLS).details
    assert (d["first_token_differs"], d["shares_prefix"], d["common_prefix_tokens"]) == (True, False, 0)
    d = classify('fetch_time(tz="x")', GOLD, TOOLS, tokenize=list).details  # a caller's tokenizer
    assert d["common_prefix_tokens"] == 0 and d["first_token_differs"]
    assert split_name("getHTTPResponse_v2") == ["get", "HTTP", "Response", "_v", "2"]
    assert d == classify(parse('fetch_time(tz="x")'), GOLD, TOOLS, tokenize=list).details  # Parsed input too


def test_strict_mode_values():
    gold = Call("get_weather_current", {"city": "Paris", "days": 2})
    assert classify('get_weather_current(city="Paris", days=2.0)', gold, TOOLS).category == CORRECT
    assert classify('get_weather_current(city="paris", days=2)', gold, TOOLS).category == CONTENT_ERROR
    assert classify('get_weather_current(city="Paris", days="2")', gold, TOOLS).category == CONTENT_ERROR
    gold_bool = Call("get_weather_current", {"city": "Paris", "days": True})
    assert classify('get_weather_current(city="Paris", days=1)', gold_bool, TOOLS).category == CONTENT_ERROR


def test_rotbench_mode_quirks():
    gold = Call("get_weather_current", {"city": "Paris", "unit": "None", "days": "2"})
    # "None" = not checked, but the key must be there (RoTBench compares key sets first)
    assert (
        classify(
            'get_weather_current(city="Paris", unit="f", days="2")', gold, TOOLS, mode="rotbench"
        ).category
        == CORRECT
    )
    assert (
        classify('get_weather_current(city="Paris", days="2")', gold, TOOLS, mode="rotbench").category
        == PARAM_MISSING
    )
    assert (
        classify('get_weather_current(city="Paris", unit="f", days=2)', gold, TOOLS, mode="rotbench").category
        == CONTENT_ERROR
    )
    assert (
        classify('get_weather_current(city="Paris", unit="f", days="2")', gold, TOOLS, mode="strict").category
        == CONTENT_ERROR
    )
    # Python == : true equals 1 in RoTBench's comparison (not in strict mode)
    gold_int = Call("get_weather_current", {"city": "Paris", "days": 1})
    assert (
        classify('get_weather_current(city="Paris", days=true)', gold_int, TOOLS, mode="rotbench").category
        == CORRECT
    )
    # finish / ask_to_user: only the key set is compared
    assert (
        classify(
            'finish(answer="anything")', Call("finish", {"answer": "Paris is sunny"}), TOOLS, mode="rotbench"
        ).category
        == CORRECT
    )


def test_several_acceptable_golds_pick_the_best():
    golds = [Call("get_weather_forecast", {"city": "Paris"}), Call("get_weather_current", {"city": "Paris"})]
    c = classify('get_weather_current(city="Paris")', golds, TOOLS)
    assert c.category == CORRECT and c.details["gold_index"] == 1
    c = classify('get_weather_current(city="Rome")', golds, TOOLS)
    assert c.category == CONTENT_ERROR and c.details["gold_index"] == 1


def test_bfcl_mode():
    tools = [
        {
            "name": "geo.find",
            "parameters": {
                "type": "dict",
                "required": ["city"],
                "properties": {
                    "city": {"type": "string"},
                    "radius": {"type": "float"},
                    "n": {"type": "integer"},
                    "tags": {"type": "array"},
                    "opts": {"type": "dict"},
                },
            },
        }
    ]
    gold = Call(
        "geo.find",
        {
            "city": ["San Francisco, CA", "SF"],
            "radius": [5.0, ""],
            "n": [3, ""],
            "tags": [["a b", "c"]],
            "opts": [{"k": ["x"], "j": ["", 1]}, ""],
        },
    )

    def cat(text):
        return classify(text, gold, tools, mode="bfcl", bfcl_value_ok=value_ok).category

    assert cat('geo.find(city="san francisco ca", tags=["A-B", "c"])') == CORRECT  # optional keys omitted
    assert (
        cat('geo.find(city="sf", radius=5, n=3, tags=["ab", "c"], opts={"k": "X"})') == CORRECT
    )  # int for float
    assert cat('geo.find(city="SF", n=3.0, tags=["ab", "c"])') == CONTENT_ERROR  # float for an integer
    assert cat('geo.find(city="SF", tags=["c", "ab"])') == CONTENT_ERROR  # list order matters
    assert (
        cat('geo.find(city="SF", tags=["ab", "c"], opts={"j": 1})') == CONTENT_ERROR
    )  # dict key "k" not optional
    assert cat('geo.find(city="LA", tags=["ab", "c"])') == CONTENT_ERROR
    assert cat('geo.find(city="SF")') == PARAM_MISSING  # tags has no "" -> required here
    with pytest.raises(ValueError, match="list of acceptable values"):
        classify(
            'geo.find(city="SF")',
            Call("geo.find", {"city": "SF"}),
            tools,
            mode="bfcl",
            bfcl_value_ok=value_ok,
        )


def test_bfcl_mode_follows_bfcls_checker():
    tools = [
        {
            "name": "f",
            "parameters": {
                "type": "dict",
                "required": ["a", "xs"],
                "properties": {
                    "a": {"type": "string"},
                    "xs": {"type": "array", "items": {"type": "float"}},
                    "t": {"type": "tuple", "items": {"type": "integer"}},
                    "n": {"type": "integer"},
                },
            },
        }
    ]

    def cat(text, **gold):
        gold = {"a": ["x"], "xs": [[1.5, 2.0]], **gold}
        return classify(text, Call("f", gold), tools, mode="bfcl", bfcl_value_ok=value_ok).category

    assert cat('f(a="x", xs=[1.5, 2.0])') == CORRECT
    assert (
        cat("f(xs=[1.5, 2.0])", a=["x", ""]) == PARAM_MISSING
    )  # required by the schema, whatever the answer lists
    assert cat('f(a="x", xs=[1.5, 2])') == CONTENT_ERROR  # array items are type-checked: 2 is no float
    assert cat('f(a="x", xs=[1, 2])', xs=[[1, 2]]) == CORRECT  # ... unless the answer itself holds ints
    assert (
        cat('f(a="x", xs=[1.5, 2.0], zz=1)', zz=[1]) == PARAM_HALLUCINATION
    )  # not in the schema, though in the answer
    assert cat('f(a="x", xs=[1.5, 2.0], t=[1, 2])', t=[[1, 2]]) == CORRECT
    assert (
        cat('f(a="x", xs=[1.5, 2.0], n="7")', n=["7"]) == CORRECT
    )  # BFCL's "variable": the answer's type counts


def test_no_call_expected_and_extra_calls():
    assert classify("I can't help with that.", None, TOOLS).category == CORRECT
    assert classify('fetch_time(tz="x")', None, TOOLS).category == WRONG_TOOL
    assert classify('nope(tz="x")', None, TOOLS).category == TOOL_HALLUCINATION
    assert reward("Just text.", None, TOOLS) == 1.0
    assert classify("x(a=1)", GOLD, None).category == WRONG_TOOL  # tools=None: names are not checked


@pytest.mark.parametrize(
    "pred, category, value",
    [
        # more calls than the gold expects: the first against the gold, each further one as an
        # unexpected call, the output the worst of them -- never +1
        (
            '[get_weather_current(city="Paris"), made_up(x=1)]',
            TOOL_HALLUCINATION,
            -2.0,
        ),  # a made-up tool anywhere
        ('[made_up(x=1), get_weather_current(city="Paris")]', TOOL_HALLUCINATION, -2.0),
        ('[get_weather_current(city="Paris"), fetch_time(tz="x")]', WRONG_TOOL, -1.5),  # an offered tool
        (
            '[get_weather_current(city="Paris"), get_weather_current(city="Paris")]',
            WRONG_TOOL,
            -1.5,
        ),  # a repeat too
        ('get_weather_current(city="Paris")\nget_weather_current(city="Lyon")', WRONG_TOOL, -1.5),
        (
            '[get_weather_current(wind=1, unit="c"), fetch_time(tz="x")]',
            PARAM_HALLUCINATION,
            -1.8,
        ),  # the worst wins
        (
            'Thought:\nAction: get_weather_current\nAction Input: {"city": "Paris"}\n'
            "Action: made_up\nAction Input: {}",
            TOOL_HALLUCINATION,
            -2.0,
        ),  # ReAct, two Action blocks
    ],
)
def test_extra_calls_are_never_rewarded(pred, category, value):
    c = classify(pred, GOLD, TOOLS)
    assert (c.category, reward(pred, GOLD, TOOLS)) == (category, value)
    assert (c.details["ts"], c.details["pi"], c.details["cf"]) == (
        False,
        False,
        False,
    )  # as both official checkers
    assert c.details["extra_calls"] and c.details["predicted_name"] == parse(pred).calls[0].name
    for mode in ("rotbench", "strict"):
        assert reward(pred, [GOLD], TOOLS, mode=mode) < 0
    # no call expected: every call is unexpected
    assert classify('[fetch_time(tz="x"), nope()]', None, TOOLS).category == TOOL_HALLUCINATION


def test_ppo_reward_is_the_same_function():
    from tl.episode import Item
    from tl.ppo import score_response

    prompt = Item("p", "train", TOOLS, [{"role": "user", "content": "Weather in Paris?"}], [GOLD], "strict")
    assert score_response('get_weather_current(city="Paris")', prompt) == (1.0, CORRECT)
    assert score_response('[get_weather_current(city="Paris"), made_up(x=1)]', prompt) == (
        -2.0,
        TOOL_HALLUCINATION,
    )
    assert score_response('[get_weather_current(city="Paris"), fetch_time(tz="x")]', prompt) == (
        -1.5,
        WRONG_TOOL,
    )
    with pytest.raises(ValueError, match="mode must be one of"):
        classify("f()", GOLD, TOOLS, mode="loose")


def test_classify_calls_is_order_free_and_matches_like_bfcl():
    golds = [
        Call("get_weather_current", {"city": ["Paris", "Rome"]}),
        Call("get_weather_current", {"city": ["Paris"]}),
    ]
    r = classify_calls(
        '[get_weather_current(city="Rome"), get_weather_current(city="Paris")]',
        golds,
        TOOLS,
        mode="bfcl",
        bfcl_value_ok=value_ok,
    )
    assert r.category == CORRECT and r.details["matches"] == [(0, 0), (1, 1)]
    # BFCL's first-fit rule: gold 0 takes the first prediction it accepts (Paris), and gold 1 then
    # finds none, although another assignment exists; its checker calls this invalid, and so do we
    r = classify_calls(
        '[get_weather_current(city="Paris"), get_weather_current(city="Rome")]',
        golds,
        TOOLS,
        mode="bfcl",
        bfcl_value_ok=value_ok,
    )
    assert r.category == CONTENT_ERROR and r.details["matches"] == [(0, 0), (1, 1)]
    r = classify_calls(
        '[get_weather_current(city="Rome")]', golds, TOOLS, mode="bfcl", bfcl_value_ok=value_ok
    )
    assert r.category == NO_CALL and [c.category for c in r.per_call] == [CORRECT, NO_CALL]
    r = classify_calls(
        '[get_weather_current(city="Rome"), get_weather_current(city="Paris"), fetch_time(tz="x")]',
        golds,
        TOOLS,
        mode="bfcl",
        bfcl_value_ok=value_ok,
    )
    assert r.category == WRONG_TOOL and r.details["extra_calls"] == [2]
    assert classify_calls("f(", golds, TOOLS, mode="bfcl", bfcl_value_ok=value_ok).category == UNPARSABLE
    assert classify_calls("No tool fits.", [], TOOLS).category == CORRECT


def test_bfcl_mode_without_its_value_rules_is_a_clear_error():
    with pytest.raises(ValueError, match="bfcl_value_ok"):
        classify("f(x=1)", Call("f", {"x": [1]}), None, mode="bfcl")
