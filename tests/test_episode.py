"""The episode runner with scripted policies: one correct, one that hallucinates, one that never
stops; plus parallel calls, batched lock-step episodes and a pluggable executor."""

import pytest

from tasks.toolbox import TOOLS, schemas
from tl.calls import render_prompt
from tl.classify import (
    ALL_RIGHT,
    CONTENT_ERROR,
    CORRECT,
    PARAM_HALLUCINATION,
    PARAM_MISSING,
    TOOL_CALL_FAILURE,
    TOOL_HALLUCINATION,
    UNPARSABLE,
    classify_feedback,
)
from tl.episode import MAX_TURNS, Episode, Task, run_episodes
from tl.sandbox import Result, Sandbox, validate_call


def run_episode(policy, tools, query, *, executor, max_turns=MAX_TURNS) -> Episode:
    """One task driven by `policy(prompt) -> text` until it answers or runs out of turns."""
    episode = Episode(tools, query, executor, max_turns=max_turns)
    while not episode.done:
        episode.step(policy(episode.prompt()))
    return episode


TOOL_LIST = schemas(["get_country_capital", "get_weather_current", "get_weather_forecast", "get_weekday"])
QUERY = "What's the weather in the capital of Japan right now?"


@pytest.fixture(scope="module")
def box():
    with Sandbox(TOOLS, workers=1) as sandbox:
        yield sandbox


def scripted(*outputs):
    """A policy that answers the n-th prompt with the n-th output and records the prompts."""
    prompts = []

    def policy(prompt):
        prompts.append(prompt)
        return outputs[len(prompts) - 1]

    policy.prompts = prompts
    return policy


def test_a_correct_policy_finishes_with_every_call_correct(box):
    policy = scripted(
        ' get_country_capital(country="Japan")</s>',
        ' get_weather_current(city="Tokyo")',
        " It is 9 °C and sunny in Tokyo.</s>",
    )
    ep = run_episode(policy, TOOL_LIST, QUERY, executor=box)
    assert ep.answer == "It is 9 °C and sunny in Tokyo."
    assert [t.kind for t in ep.turns] == ["calls", "calls", "answer"]
    assert [(c.call.name, c.category, c.result.category) for c in ep.calls] == [
        ("get_country_capital", CORRECT, ALL_RIGHT),
        ("get_weather_current", CORRECT, ALL_RIGHT),
    ]
    assert ep.calls[0].result.output == '{"country": "Japan", "capital": "Tokyo"}'
    # The trajectory is a training record, and each prompt renders the conversation so far.
    assert [m["role"] for m in ep.messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert ep.messages[2] == {
        "role": "tool",
        "content": '{"country": "Japan", "capital": "Tokyo"}',
        "result": {"ok": True, "category": ALL_RIGHT, "message": ""},
    }
    assert policy.prompts[1] == render_prompt(TOOL_LIST, ep.messages[:3])
    assert policy.prompts[1].endswith('Output: {"country": "Japan", "capital": "Tokyo"}\nAssistant:')
    assert [t.prompt for t in ep.turns] == policy.prompts


def test_a_hallucinating_policy_gets_python_worded_feedback_and_categories(box):
    policy = scripted(
        'get_capital(country="Japan")',
        'get_country_capital(country="Japan", lang="en")',
        "get_weather_current()",
        'get_weather_current(city="Tokyo"',
        "",
        'get_weather_current(city="Tokio")',
        'finish(answer="It is cold in Tokyo.")',
    )
    ep = run_episode(policy, TOOL_LIST, QUERY, executor=box)
    assert [c.category for c in ep.calls] == [
        TOOL_HALLUCINATION,
        PARAM_HALLUCINATION,
        PARAM_MISSING,
        UNPARSABLE,
        UNPARSABLE,
        CONTENT_ERROR,
    ]
    assert [c.result.category for c in ep.calls] == [
        TOOL_HALLUCINATION,
        PARAM_HALLUCINATION,
        PARAM_MISSING,
        TOOL_CALL_FAILURE,
        TOOL_CALL_FAILURE,
        TOOL_CALL_FAILURE,
    ]
    assert ep.calls[0].result.message == "NameError: name 'get_capital' is not defined"
    assert ep.calls[3].call is None and ep.calls[3].result.message.startswith(
        "SyntaxError: could not read a tool call"
    )
    assert ep.calls[5].result.message == "ValueError: unknown city 'Tokio'"
    for m in ep.messages:  # MAE reads the feedback text as the category the run recorded
        if m["role"] == "tool":
            assert classify_feedback(m["content"]) == m["result"]["category"]
    assert ep.answer == "It is cold in Tokyo." and ep.turns[-1].kind == "answer"
    # The sandbox knows every toolbox tool, but only the offered ones exist in this episode.
    unoffered = run_episode(
        scripted('get_city_country(city="Tokyo")', "Japan."), TOOL_LIST, QUERY, executor=box
    )
    assert unoffered.calls[0].result.message == "NameError: name 'get_city_country' is not defined"
    assert len(ep.turns) == 7 and ep.messages[-1] == {"role": "assistant", "content": "It is cold in Tokyo."}


def test_a_policy_that_never_stops_is_cut_at_nine_turns(box):
    ep = run_episode(lambda prompt: 'get_weekday(date="2025-01-15")', TOOL_LIST, QUERY, executor=box)
    assert MAX_TURNS == 9 and len(ep.turns) == 9 and len(ep.calls) == 9
    assert ep.answer is None and ep.done
    assert all(c.category == CORRECT and c.result.ok for c in ep.calls)
    with pytest.raises(RuntimeError, match="over"):
        ep.step("Done.")
    short = run_episode(
        lambda prompt: 'get_weekday(date="2025-01-15")', TOOL_LIST, QUERY, executor=box, max_turns=2
    )
    assert len(short.turns) == 2 and short.answer is None


def test_parallel_calls_run_in_order_each_with_its_feedback(box):
    policy = scripted('[get_country_capital(country="Japan"), get_weather_current(city="Kyoto")]', "Cold.")
    ep = run_episode(policy, TOOL_LIST, QUERY, executor=box)
    assert [c.category for c in ep.calls] == [CORRECT, CONTENT_ERROR]
    assert ep.calls[1].result.category == TOOL_CALL_FAILURE  # Kyoto is not in the facts table
    assert ep.messages[1] == {
        "role": "assistant",
        "tool_calls": [
            {"name": "get_country_capital", "arguments": {"country": "Japan"}},
            {"name": "get_weather_current", "arguments": {"city": "Kyoto"}},
        ],
    }
    assert [m["role"] for m in ep.messages[:4]] == ["user", "assistant", "tool", "tool"]


def test_batched_episodes_match_single_ones_and_any_executor_plugs_in():
    class Simulator:
        """A ToolEyes-style stand-in: the sandbox's validation, then a made-up output."""

        def __init__(self):
            self.seen = []

        def run(self, call):
            self.seen.append(call.name)
            return validate_call(call, TOOL_LIST) or Result(True, f'{{"simulated": "{call.name}"}}')

    def policy(prompt):
        return 'get_weekday(date="2025-03-01")' if prompt.count("Output:") < 1 else "It is a Saturday."

    tasks = [
        Task("a", "t", TOOL_LIST, "Which weekday is 2025-03-01?"),
        Task("b", "t", TOOL_LIST, "Day of 2025-03-01?"),
        Task("c", "t", TOOL_LIST, "Just say hi."),
    ]
    sim, finished = Simulator(), []

    def batch_policy(prompts):
        return [policy(p) if "hi." not in p else "Hi." for p in prompts]

    batch = run_episodes(batch_policy, tasks, lambda t: sim, progress=finished.append)
    single = [
        run_episode(lambda p: batch_policy([p])[0], t.tools, t.query, executor=Simulator()) for t in tasks
    ]
    assert [e.messages for e in batch] == [e.messages for e in single]
    assert [[c.category for c in e.calls] for e in batch] == [[c.category for c in e.calls] for e in single]
    assert [e.answer for e in batch] == ["It is a Saturday.", "It is a Saturday.", "Hi."]
    assert sim.seen == ["get_weekday", "get_weekday"]
    assert batch[0].messages[2]["content"] == '{"simulated": "get_weekday"}'
    assert finished == [1, 2]  # tasks finished per round: "c" after one turn, "a" and "b" after two
    with pytest.raises(ValueError, match="outputs"):
        run_episodes(lambda prompts: [], tasks, lambda t: sim)
    own = {}  # an executor per task
    run_episodes(batch_policy, tasks, lambda t: own.setdefault(t.id, Simulator()))
    assert {k: s.seen for k, s in own.items()} == {"a": ["get_weekday"], "b": ["get_weekday"], "c": []}
    assert Episode(TOOL_LIST, "q", sim).prompt().endswith("User: q\nAssistant:")
