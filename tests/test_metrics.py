"""tl.metrics: DE/CE/VA on scripted policies whose mistakes are known in advance, the ToolEyes
simulator, and hand-computed TS/PI/CF and Table-1 figures."""

import json

import pytest

from tasks import Task
from tasks.run import episode_record, task_executors
from tasks.tooleyes import NO_USER_REPLY, Simulator
from tl.calls import Call
from tl.classify import classify, classify_calls
from tl.episode import run_episodes
from tl.metrics import error_analysis, item_stages, multi_turn_metrics, single_turn_metrics

RANDOM = [
    {
        "name": "get_random_number",
        "description": "Return a random number.",
        "parameters": {
            "type": "object",
            "properties": {
                "min": {"type": "string", "description": "Minimum."},
                "max": {"type": "string", "description": "Maximum."},
            },
            "required": ["max"],
        },
    },
    {
        "name": "ask_to_user",
        "description": "Ask the user.",
        "parameters": {
            "type": "object",
            "properties": {"question": {"type": "string", "description": "Q."}},
            "required": ["question"],
        },
    },
    {
        "name": "finish",
        "description": "Finish.",
        "parameters": {
            "type": "object",
            "properties": {"answer": {"type": "string", "description": "A."}},
            "required": ["answer"],
        },
    },
]


def scripted(scripts):
    """A batch policy: task query -> its list of outputs, one per turn (the turn = the number of
    Output: lines so far); past the end of its script a policy repeats its last output."""

    def policy(prompts):
        outs = []
        for p in prompts:
            query = p.split("\nUser: ", 1)[1].split("\n", 1)[0]
            turn = p.count("\nOutput: ")
            script = scripts[query]
            outs.append(" " + script[min(turn, len(script) - 1)])
        return outs

    return policy


def test_de_ce_va_on_scripted_policies():
    scripts = {
        # a hallucinated tool (DE), then a good call, then a plain-text answer: valid
        "A": ['get_random_numbers(max="9")', 'get_random_number(max="9")', "It is 4."],
        # a missing required key (DE), a wrong type (CE), an unreadable call (CE), then finish(): valid
        "B": [
            'get_random_number(min="1")',
            "get_random_number(max=9)",
            'get_random_number(max="9"',
            'finish(answer="7")',
        ],
        # never stops: 9 good calls, no answer within 9 turns
        "C": ['get_random_number(max="3")'],
        # an extra key (DE), asks the user (fine), then finish with an empty answer: not valid
        "D": ['get_random_number(max="9", seed="1")', 'ask_to_user(question="Range?")', 'finish(answer="")'],
    }
    tasks = [Task(q, "t", RANDOM, q, "RS" if q in "AB" else "TG") for q in scripts]
    executor_for, _ = task_executors("tooleyes/zero")  # a Simulator per task
    episodes = run_episodes(scripted(scripts), tasks, executor_for)
    records = [episode_record(t, e) for t, e in zip(tasks, episodes)]
    assert [r["calls"] for r in records] == [
        ["tool_hallucination", "all_right"],
        ["param_missing", "others", "tool_call_failure"],
        ["all_right"] * 9,
        ["param_hallucination", "all_right"],
    ]
    assert [(r["turns"], r["valid_answer"]) for r in records] == [
        (3, True),
        (4, True),
        (9, False),
        (3, False),
    ]
    m = multi_turn_metrics(records)
    # 16 calls: DE = 3 (hallucinated tool, missing key, extra key), CE = 2; VA = 2 of 4 tasks
    assert (m["n"], m["calls"], m["DE"], m["CE"], m["VA"]) == (4, 16, 18.75, 12.5, 50.0)
    assert m["by_category"]["RS"] == {"n": 2, "calls": 5, "DE": 40.0, "CE": 40.0, "VA": 100.0}
    assert m["by_category"]["TG"] == {"n": 2, "calls": 11, "DE": 9.09, "CE": 0.0, "VA": 0.0}
    assert records[3]["messages"][4] == {
        "role": "tool",
        "content": NO_USER_REPLY,
        "result": {"ok": True, "category": "all_right", "message": ""},
    }


def test_synthetic_tasks_run_in_the_real_sandbox_over_the_offered_tools():
    from tasks.toolbox import schemas

    scripts = {
        "Weather in Paris?": [
            'get_weather_current(city="Paris")',  # runs in the sandbox: all right
            'get_country_capital(country="France")',  # a toolbox tool this task does not offer: DE
            'get_weather_forecast(city="Atlantis", date="2024-01-01")',  # the tool raises (unknown city): CE
            "It is cloudy in Paris.",
        ]
    }
    task = Task(
        "m0", "synthetic/multi", schemas(["get_weather_current", "get_weather_forecast"]), "Weather in Paris?"
    )
    executor_for, close = task_executors("synthetic/multi")
    try:
        (episode,) = run_episodes(scripted(scripts), [task], executor_for)
    finally:
        close()
    record = episode_record(task, episode)
    assert record["calls"] == ["all_right", "tool_hallucination", "tool_call_failure"]
    assert json.loads(record["messages"][2]["content"])["city"] == "Paris"  # the toolbox's real output
    m = multi_turn_metrics([record])
    assert (m["DE"], m["CE"], m["VA"]) == (33.33, 33.33, 100.0)


def test_simulator_is_deterministic_and_validates_like_the_sandbox():
    sim = Simulator(RANDOM)
    a = sim.run(Call("get_random_number", {"max": "9"}))
    assert a.ok and a == sim.run(Call("get_random_number", {"max": "9"}))
    assert json.loads(a.output)["arguments"] == {"max": "9"}
    assert a.output != sim.run(Call("get_random_number", {"max": "8"})).output
    assert sim.run(Call("nope", {})).message == "NameError: name 'nope' is not defined"
    assert (
        sim.run(Call("get_random_number", {"max": 9})).message
        == "TypeError: get_random_number() argument 'max' must be str, not int"
    )


def tool(name, *keys):
    return {
        "name": name,
        "description": "",
        "parameters": {
            "type": "object",
            "required": list(keys),
            "properties": {k: {"type": "string", "description": ""} for k in keys},
        },
    }


TOOLS = [
    tool("get_weather_current", "city", "unit"),
    tool("get_weather_forecast", "city", "days"),
    tool("search", "q"),
]


def test_single_turn_metrics_and_table_1_by_hand():
    gold = Call("get_weather_current", {"city": "Paris"})
    outputs = [
        'get_weather_current(city="Paris")',  # correct
        'get_weather_forecast(city="Paris")',  # wrong tool sharing the prefix get_weather
        'search(q="Paris")',  # wrong tool, first piece differs
        'get_weather_current(city="Paris", unit="c")',  # redundant: declared, not in gold
        'get_weather_current(town="Paris")',  # hallucinated + missing
        'get_weather_current(city="Rome")',  # content
        "Paris is sunny.",
    ]  # no call
    records = []
    for k, out in enumerate(outputs):
        c = classify(out, gold, TOOLS)
        records.append(
            {
                "scenario": "A" if k < 4 else "B",
                **item_stages(c.category, c.details),
                "calls": [(c.category, c.details)],
            }
        )
    m = single_turn_metrics(records)
    assert (m["n"], m["TS"], m["PI"], m["CF"]) == (7, 57.14, 28.57, 14.29)
    assert m["by_category"]["A"] == {"n": 4, "TS": 50.0, "PI": 25.0, "CF": 25.0}
    e = m["errors"]
    assert e["categories"]["wrong_tool"]["n"] == 2
    assert e["wrong_tool"] == {"n": 2, "first_token_differs": 50.0, "shares_prefix": 50.0}
    assert {k: v["n"] for k, v in e["parameters"].items()} == {
        "redundant": 1,
        "missing": 1,
        "hallucinated": 1,
    }
    assert e["content"]["n"] == 1 and e["categories"]["no_call"]["n"] == 1


def test_parallel_items_need_every_call_and_no_extra_one():
    golds = [Call("search", {"q": "a"}), Call("search", {"q": "b"})]

    def stages(out):
        c = classify_calls(out, golds, TOOLS)
        return item_stages(c.category, c.details, per_call=c.per_call)

    assert stages('[search(q="b"), search(q="a")]') == {"TS": True, "PI": True, "CF": True}
    assert stages('[search(q="b"), search(q="c")]') == {"TS": True, "PI": True, "CF": False}
    assert stages('[search(q="b"), search(q="a"), search(q="z")]') == {"TS": False, "PI": False, "CF": False}
    assert stages('search(q="a")') == {"TS": False, "PI": False, "CF": False}
    # irrelevance: no decodable call is right on all three, any call wrong
    assert item_stages("unparsable", {}, no_call_expected=True) == dict.fromkeys(("TS", "PI", "CF"), True)
    assert item_stages("wrong_tool", {}, no_call_expected=True) == dict.fromkeys(("TS", "PI", "CF"), False)


def test_error_analysis_of_nothing_is_zero():
    assert error_analysis([])["wrong_tool"] == {"n": 0, "first_token_differs": 0.0, "shares_prefix": 0.0}
    with pytest.raises(KeyError):
        multi_turn_metrics([{"scenario": "x"}])
