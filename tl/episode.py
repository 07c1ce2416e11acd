"""Multi-turn episodes: generate -> parse -> execute -> `Output:` feedback, up to 9 turns
(docs/ARCHITECTURE.md, "Executors and episodes"), and the evaluation units `Item` and `Task`.

`policy(prompt_text) -> text` is any function (a model with `tl.generate`, a scripted stub). Plain
text or a `finish(answer=...)` call ends the episode with its answer; calls are checked against the
episode's own tools (`validate_call`), then run one by one by `executor.run(call) ->
Result`, each feedback becoming a tool message; an unreadable output is answered with `SyntaxError:
...` feedback so the model can retry. Each call's category: `unparsable` for an unreadable output,
else `call_category_from_feedback`.
Batched: `ep = Episode(tools, query, executor)`, then `while not ep.done: ep.step(generate(ep.prompt()))`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tl.calls import EOS_MARK, Call, format_call, normalize_tools, render_prompt, valid_unicode
from tl.classify import (
    ALL_RIGHT,
    CONTENT_ERROR,
    CORRECT,
    OTHERS,
    PARAM_HALLUCINATION,
    PARAM_MISSING,
    TOOL_CALL_FAILURE,
    TOOL_HALLUCINATION,
    UNPARSABLE,
)
from tl.parse import Parsed, parse

MAX_TURNS = 9  # ToolEyes' and the paper's multi-turn limit


@dataclass(frozen=True)
class Unit:
    """What every evaluation unit and training prompt has: its id, the benchmark (or "train"), its tools."""

    id: str
    benchmark: str
    tools: list


@dataclass(frozen=True)
class Item(Unit):
    """One single-turn test, or one PPO prompt: predict the next assistant call after `messages`.

    tools: any form `normalize_tools` reads (BFCL's own schemas kept: its checker reads their types).
    gold, per `mode`: "rotbench" a list of acceptable `Call`s; "bfcl" BFCL's `ground_truth` list, one
    `{name: {param: [acceptable values]}}` per expected call, `[]` for (live_)irrelevance and
    live_relevance (the category says what is right); "strict" `[Call]` (the synthetic split).
    options: keywords for `tl.classify.classify` (RoTBench's `unchecked_tools`, `aliases`). reader: how
    the benchmark's checker reads text: "project" (tl.parse), "rotbench" or "bfcl" (tasks.*).
    """

    messages: list
    gold: list
    mode: str
    category: str = ""
    options: dict = field(default_factory=dict)
    reader: str = "project"


@dataclass(frozen=True)
class Task(Unit):
    """One multi-turn task: the model works from `query` with `tools` for up to 9 turns."""

    query: str
    category: str = ""
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """One call's outcome. feedback: the text after `Output:`; to_dict(): a tool message's `result`."""

    ok: bool
    output: str = ""
    category: str = ALL_RIGHT
    message: str = ""

    @property
    def feedback(self) -> str:
        return self.output if self.ok else self.message

    def to_dict(self) -> dict:
        return {"ok": self.ok, "category": self.category, "message": self.message}


# JSON schema type -> (the Python types it accepts, the name a TypeError uses). Exact types: a bool is no
# int, as in JSON.
_JSON_TYPES = {
    "string": ((str,), "str"),
    "integer": ((int,), "int"),
    "number": ((int, float), "float"),
    "boolean": ((bool,), "bool"),
    "array": ((list,), "list"),
    "object": ((dict,), "dict"),
    "null": ((type(None),), "NoneType"),
}


def validate_call(call, schemas) -> Result | None:
    """None when the call may run against `schemas` ({name: schema} or a list; None for an optional
    parameter means not given), else the failed Result worded like Python, checked in Python's order:
    `NameError: name 'x' is not defined`, `TypeError: f() got an unexpected keyword argument 'x'`,
    `... missing 1 required positional argument: 'y'`, `... argument 'n' must be int, not str`.
    Every executor checks a call with it first."""
    call = Call.from_dict(call)
    by_name = schemas if isinstance(schemas, dict) else {s["name"]: s for s in schemas}
    schema = by_name.get(call.name)
    if schema is None:
        return Result(False, "", TOOL_HALLUCINATION, f"NameError: name '{call.name}' is not defined")
    props = schema["parameters"].get("properties", {})
    required = schema["parameters"].get("required", [])
    for key in call.arguments:
        if key not in props:
            return Result(
                False,
                "",
                PARAM_HALLUCINATION,
                f"TypeError: {call.name}() got an unexpected keyword argument '{key}'",
            )
    missing = [f"'{k}'" for k in required if k not in call.arguments]
    if missing:
        # listed as Python does: 'a' / 'a' and 'b' / 'a', 'b', and 'c'
        if len(missing) <= 2:
            listed = " and ".join(missing)
        else:
            listed = ", ".join(missing[:-1]) + ", and " + missing[-1]
        return Result(
            False,
            "",
            PARAM_MISSING,
            f"TypeError: {call.name}() missing {len(missing)} required "
            f"positional argument{'s' if len(missing) > 1 else ''}: {listed}",
        )
    for key, value in call.arguments.items():
        types, py_name = _JSON_TYPES.get(props[key].get("type"), (None, None))
        omitted = value is None and key not in required  # None for an optional parameter: not given
        if types and type(value) not in types and not omitted:
            return Result(
                False,
                "",
                OTHERS,
                f"TypeError: {call.name}() argument '{key}' must be {py_name}, not {type(value).__name__}",
            )
    return None


FINISH = "finish"
_SAME = (TOOL_HALLUCINATION, PARAM_HALLUCINATION, PARAM_MISSING)  # feedback and call category alike


def call_category_from_feedback(result: Result) -> str:
    """The call category an executed call earns from its feedback alone (no reference): all_right ->
    correct, a documentation error (`_SAME`) kept, anything else (a wrong type, a crash) content_error."""
    if result.category == ALL_RIGHT:
        return CORRECT
    return result.category if result.category in _SAME else CONTENT_ERROR


@dataclass
class EpisodeCall:
    """One call of an episode. `call` is None for an unreadable output (category unparsable)."""

    call: Call | None
    result: Result
    category: str


@dataclass
class Turn:
    prompt: str
    output: str  # the policy's raw text
    parsed: Parsed
    kind: str  # "calls", "answer" or "unparsable"
    calls: list[EpisodeCall] = field(default_factory=list)


class Episode:
    """One task's episode (see the module docstring); `run_episodes` drives a batch of them."""

    def __init__(
        self, tools, query: str, executor, *, max_turns: int = MAX_TURNS, prompt_format: str = "project"
    ):
        self.tools = normalize_tools(tools)
        self._schemas = {t["name"]: t for t in self.tools}
        self.query = query
        self.executor = executor
        self.max_turns = max_turns
        self.prompt_format = prompt_format
        self.messages: list[dict] = [{"role": "user", "content": query}]
        self.turns: list[Turn] = []
        self.answer: str | None = None

    @property
    def done(self) -> bool:
        """Answered (the paper's VA, per task) or out of turns."""
        return self.answer is not None or len(self.turns) >= self.max_turns

    @property
    def calls(self) -> list[EpisodeCall]:
        return [c for t in self.turns for c in t.calls]

    def prompt(self) -> str:
        return render_prompt(
            self.tools, self.messages, add_generation_prompt=True, prompt_format=self.prompt_format
        )

    def step(self, output: str) -> Turn:
        """Feed the policy's output for the current prompt; returns the recorded turn."""
        if self.done:
            raise RuntimeError("Episode.step: the episode is over (answered or out of turns)")
        output = valid_unicode(output)  # the output goes back into the next prompt
        prompt = self.prompt()
        parsed = parse(output)
        text = output.split(EOS_MARK, 1)[0].strip() if isinstance(output, str) else ""
        if parsed.kind == "no_call" and text:
            turn = Turn(prompt, output, parsed, "answer")
            self.answer = text
            self.messages.append({"role": "assistant", "content": text})
        elif parsed.kind == "calls":
            turn = Turn(prompt, output, parsed, "calls")
            calls = parsed.calls
            # a finish call ends the episode: the calls before it run, those after it do not
            finish_at = next((i for i, c in enumerate(calls) if c.name.lower() == FINISH), None)
            executed = calls if finish_at is None else calls[:finish_at]
            if executed:
                if len(executed) == 1:
                    message = {"role": "assistant", "tool_call": executed[0].to_dict()}
                else:
                    message = {"role": "assistant", "tool_calls": [c.to_dict() for c in executed]}
                self.messages.append(message)
            for call in executed:
                # Only the tools this episode offers exist: a toolbox tool the prompt did not list
                # is a hallucination even if the executor could run it.
                result = validate_call(call, self._schemas) or self.executor.run(call)
                turn.calls.append(EpisodeCall(call, result, call_category_from_feedback(result)))
                self.messages.append({"role": "tool", "content": result.feedback, "result": result.to_dict()})
            if finish_at is not None:
                turn.kind = "answer" if not executed else "calls"
                finish = calls[finish_at]
                # its `answer` argument, else its first argument, else nothing
                first_value = next(iter(finish.arguments.values()), "")
                answer = finish.arguments.get("answer", first_value)
                self.answer = answer if isinstance(answer, str) else format_call(finish)
                self.messages.append({"role": "assistant", "content": self.answer})
        else:
            why = parsed.error or "empty output; expected a tool call or a final answer"
            result = Result(False, "", TOOL_CALL_FAILURE, f"SyntaxError: could not read a tool call: {why}")
            turn = Turn(prompt, output, parsed, "unparsable", [EpisodeCall(None, result, UNPARSABLE)])
            self.messages += [
                {"role": "assistant", "content": text or "(empty)"},
                {"role": "tool", "content": result.feedback, "result": result.to_dict()},
            ]
        self.turns.append(turn)
        return turn


def run_episodes(
    batch_policy,
    tasks,
    executor_for,
    *,
    max_turns: int = MAX_TURNS,
    progress=None,
    prompt_format: str = "project",
) -> list[Episode]:
    """Run `Task`s in lock-step: one `batch_policy(prompts) -> texts` call per turn serves every
    unfinished episode (batched generation). `executor_for(task)` -> the task's executor (one for
    all: `lambda t: box`); `progress(k)` is called with the number of tasks that finished in a round."""
    episodes = [
        Episode(t.tools, t.query, executor_for(t), max_turns=max_turns, prompt_format=prompt_format)
        for t in tasks
    ]
    finished = 0  # as of the previous round
    while True:
        active = [e for e in episodes if not e.done]
        finished_now = len(episodes) - len(active)
        if progress is not None and finished_now > finished:
            progress(finished_now - finished)
        finished = finished_now
        if not active:
            return episodes
        outputs = list(batch_policy([e.prompt() for e in active]))
        if len(outputs) != len(active):
            raise ValueError(f"batch_policy returned {len(outputs)} outputs for {len(active)} prompts")
        for e, out in zip(active, outputs):
            e.step(out)
