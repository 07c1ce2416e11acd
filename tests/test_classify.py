"""Call classification and the paper's reward: hand-written cases per category and mode."""
import pytest

from tl.classify import (CONTENT_ERROR, CORRECT, NO_CALL, PARAM_HALLUCINATION, PARAM_MISSING, PARAM_REDUNDANT,
                         TOOL_HALLUCINATION, UNPARSABLE, WRONG_TOOL, classify, classify_calls, param_penalty,
                         reward, split_name)
from tl.parse import parse
from tl.schema import Call

TOOLS = [
    {"name": "get_weather_current", "description": "Current weather.",
     "parameters": {"type": "object", "required": ["city"], "properties": {
         "city": {"type": "string"}, "unit": {"type": "string"}, "days": {"type": "integer"}}}},
    {"name": "get_weather_forecast", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"name": "fetch_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
    {"name": "finish", "parameters": {"type": "object", "properties": {"answer": {"type": "string"}}}},
]
GOLD = Call("get_weather_current", {"city": "Paris"})


@pytest.mark.parametrize("pred, category, value", [
    ('get_weather_current(city="Paris")', CORRECT, 1.0),
    ('get_weather_current(city="Lyon")', CONTENT_ERROR, -0.25),
    ('fetch_time(tz="Europe/Paris")', WRONG_TOOL, -1.5),
    ('get_wether(city="Paris")', TOOL_HALLUCINATION, -2.0),
    ('get_weather_current(city="Paris"', UNPARSABLE, -2.0),
    ("It is sunny in Paris.", NO_CALL, -2.0),
    # R_p: every combination of the three parameter flags
    ('get_weather_current(city="Paris", unit="c")', PARAM_REDUNDANT, -0.5),     # redundant
    ("get_weather_current()", PARAM_MISSING, -0.5),                              # missing
    ('get_weather_current(city="Paris", wind=1)', PARAM_HALLUCINATION, -0.8),    # hallucinated
    ('get_weather_current(unit="c")', PARAM_MISSING, -1.0),                      # redundant + missing
    ('get_weather_current(city="Paris", unit="c", wind=1)', PARAM_HALLUCINATION, -1.3),  # halluc. + redundant
    ("get_weather_current(wind=1)", PARAM_HALLUCINATION, -1.3),                  # halluc. + missing
    ('get_weather_current(unit="c", wind=1)', PARAM_HALLUCINATION, -1.8),        # all three
])
def test_reward_table(pred, category, value):
    assert classify(pred, GOLD, TOOLS).category == category
    assert reward(pred, GOLD, TOOLS) == value


def test_param_penalty_values():
    assert [param_penalty(h, r, m) for h, r, m in [(0, 1, 0), (1, 0, 0), (0, 1, 1), (1, 1, 0), (1, 0, 1), (1, 1, 1)]] == \
        [-0.5, -0.8, -1.0, -1.3, -1.3, -1.8]


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
    assert classify('get_weather_current(city="Paris", unit="f", days="2")', gold, TOOLS, mode="rotbench").category == CORRECT
    assert classify('get_weather_current(city="Paris", days="2")', gold, TOOLS, mode="rotbench").category == PARAM_MISSING
    assert classify('get_weather_current(city="Paris", unit="f", days=2)', gold, TOOLS, mode="rotbench").category == CONTENT_ERROR
    assert classify('get_weather_current(city="Paris", unit="f", days="2")', gold, TOOLS, mode="strict").category == CONTENT_ERROR
    # Python == : true equals 1 in RoTBench's comparison (not in strict mode)
    gold_int = Call("get_weather_current", {"city": "Paris", "days": 1})
    assert classify('get_weather_current(city="Paris", days=true)', gold_int, TOOLS, mode="rotbench").category == CORRECT
    # finish / ask_to_user: only the key set is compared
    assert classify('finish(answer="anything")', Call("finish", {"answer": "Paris is sunny"}), TOOLS, mode="rotbench").category == CORRECT


def test_several_acceptable_golds_pick_the_best():
    golds = [Call("get_weather_forecast", {"city": "Paris"}), Call("get_weather_current", {"city": "Paris"})]
    c = classify('get_weather_current(city="Paris")', golds, TOOLS)
    assert c.category == CORRECT and c.details["gold_index"] == 1
    c = classify('get_weather_current(city="Rome")', golds, TOOLS)
    assert c.category == CONTENT_ERROR and c.details["gold_index"] == 1


def test_bfcl_mode():
    tools = [{"name": "geo.find", "parameters": {"type": "dict", "required": ["city"], "properties": {
        "city": {"type": "string"}, "radius": {"type": "float"}, "n": {"type": "integer"}, "tags": {"type": "array"},
        "opts": {"type": "dict"}}}}]
    gold = Call("geo.find", {"city": ["San Francisco, CA", "SF"], "radius": [5.0, ""], "n": [3, ""],
                             "tags": [["a b", "c"]], "opts": [{"k": ["x"], "j": ["", 1]}, ""]})

    def cat(text):
        return classify(text, gold, tools, mode="bfcl").category
    assert cat('geo.find(city="san francisco ca", tags=["A-B", "c"])') == CORRECT  # optional keys omitted
    assert cat('geo.find(city="sf", radius=5, n=3, tags=["ab", "c"], opts={"k": "X"})') == CORRECT  # int for float
    assert cat('geo.find(city="SF", n=3.0, tags=["ab", "c"])') == CONTENT_ERROR  # float for an integer
    assert cat('geo.find(city="SF", tags=["c", "ab"])') == CONTENT_ERROR  # list order matters
    assert cat('geo.find(city="SF", tags=["ab", "c"], opts={"j": 1})') == CONTENT_ERROR  # dict key "k" not optional
    assert cat('geo.find(city="LA", tags=["ab", "c"])') == CONTENT_ERROR
    assert cat('geo.find(city="SF")') == PARAM_MISSING  # tags has no "" -> required here
    with pytest.raises(ValueError, match="list of acceptable values"):
        classify('geo.find(city="SF")', Call("geo.find", {"city": "SF"}), tools, mode="bfcl")


def test_no_call_expected_and_extra_calls():
    assert classify("I can't help with that.", None, TOOLS).category == CORRECT
    assert classify('fetch_time(tz="x")', None, TOOLS).category == WRONG_TOOL
    assert classify('nope(tz="x")', None, TOOLS).category == TOOL_HALLUCINATION
    assert reward("Just text.", None, TOOLS) == 1.0
    c = classify('[get_weather_current(city="Paris"), fetch_time(tz="x")]', GOLD, TOOLS)
    assert c.category == CORRECT and c.details["extra_calls"] == ["fetch_time"]
    assert classify('x(a=1)', GOLD, None).category == WRONG_TOOL  # tools=None: names are not checked
    with pytest.raises(ValueError, match="mode must be one of"):
        classify("f()", GOLD, TOOLS, mode="loose")


def test_classify_calls_is_order_free():
    golds = [Call("get_weather_current", {"city": ["Paris", "Rome"]}), Call("get_weather_current", {"city": ["Paris"]})]
    # First-fit matching would give Paris to gold 0 and fail gold 1; the best assignment does not.
    r = classify_calls('[get_weather_current(city="Paris"), get_weather_current(city="Rome")]', golds, TOOLS, mode="bfcl")
    assert r.category == CORRECT and r.details["matches"] == [(0, 1), (1, 0)]
    r = classify_calls('[get_weather_current(city="Rome")]', golds, TOOLS, mode="bfcl")
    assert r.category == NO_CALL and [c.category for c in r.per_call] == [CORRECT, NO_CALL]
    r = classify_calls('[get_weather_current(city="Rome"), get_weather_current(city="Paris"), fetch_time(tz="x")]',
                       golds, TOOLS, mode="bfcl")
    assert r.category == WRONG_TOOL and r.details["extra_calls"] == [2]
    assert classify_calls("f(", golds, TOOLS, mode="bfcl").category == UNPARSABLE
    assert classify_calls("No tool fits.", [], TOOLS).category == CORRECT
