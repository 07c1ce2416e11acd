"""Tiny SFT inputs for tests: hand-written trajectories in the project format (with erroneous
calls of several feedback categories) and a small tokenizer trained on them."""

import json
import os

from tl.calls import EOS_MARK, render_prompt
from tl.tokenizer import SentencePieceTokenizer, load_tokenizer, train_tokenizer


def tool(name, description, **params):
    return {
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "required": list(params),
            "properties": {k: {"type": t, "description": k} for k, t in params.items()},
        },
    }


TOOLS = [
    tool("get_weather_current", "Current weather for a city.", city="string"),
    tool("get_weather_forecast", "Forecast for a city.", city="string", days="integer"),
    tool("get_weather", "Weather summary.", city="string"),
    tool("convert_currency", "Convert money.", amount="number", to="string"),
]
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Kyiv", "Quito", "Hanoi", "Dakar", "Bern", "Cairo"]
ERRORS = [  # (bad call, feedback): each is an erroneous call MAE must mask
    (
        {"name": "get_weather_current", "arguments": {"town": "X"}},
        "TypeError: get_weather_current() got an unexpected keyword argument 'town'",
    ),
    (
        {"name": "get_weather_forecast", "arguments": {"city": "X"}},
        "TypeError: get_weather_forecast() missing 1 required positional argument: 'days'",
    ),
    ({"name": "get_wether", "arguments": {"city": "X"}}, "NameError: name 'get_wether' is not defined"),
]


def records(n: int = 24) -> list[dict]:
    """n trajectories of varied length; every third one starts with an erroneous call."""
    out = []
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        messages = [
            {"role": "user", "content": f"Weather in {city} for the next {1 + i % 5} days?" * (1 + i % 3)}
        ]
        if i % 3 == 2:
            bad, feedback = ERRORS[(i // 3) % len(ERRORS)]
            messages += [
                {"role": "assistant", "tool_call": {**bad, "arguments": {k: city for k in bad["arguments"]}}},
                {"role": "tool", "content": feedback},
            ]
        name = ["get_weather_current", "get_weather_forecast", "get_weather"][i % 3]
        arguments = {"city": city, "days": 1 + i % 5} if name == "get_weather_forecast" else {"city": city}
        messages += [
            {"role": "assistant", "tool_call": {"name": name, "arguments": arguments}},
            {"role": "tool", "content": json.dumps({"temp_c": 10 + i, "sky": "clear"})},
            {"role": "assistant", "content": f"It is {10 + i} C in {city}."},
        ]
        out.append({"id": f"t{i}", "tools": TOOLS, "messages": messages})
    return out


def write_jsonl(path, recs) -> str:
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)
    return str(path)


def tokenizer(directory, recs=None, vocab_size: int = 400) -> SentencePieceTokenizer:
    """A BPE tokenizer trained on the rendered trajectories (cached in `directory`)."""
    path = os.path.join(directory, "tokenizer.model")
    if not os.path.exists(path):
        texts = [
            p
            for r in (recs or records())
            for p in render_prompt(r["tools"], r["messages"], add_generation_prompt=False).split(EOS_MARK)
        ]
        train_tokenizer(texts * 4, path, vocab_size=vocab_size)
    return load_tokenizer(path)


if __name__ == "__main__":
    # Under torchrun: run train_sft.main once per argument list (one launch, several configs).
    import sys

    import train_sft

    for argv in json.loads(sys.argv[1]):
        train_sft.main(argv)
    train_sft.dist.close_distributed()
