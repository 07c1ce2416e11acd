"""Task templates over the toolbox for the synthetic generator (`tasks.synth`): every row of `TASKS`
makes only valid calls and formats an answer true to their recorded outputs. Phrasings vary, the
structure repeats: a small model can learn it in minutes. The order of the rng calls is part of the
data (the same seed must give the same bytes): draws run left to right, values before the phrasing.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from tasks.toolbox.tools import CITIES, COUNTRIES, REFERENCE_DATE, USD_RATES
from tl.calls import Call

CITY_NAMES = sorted(CITIES)
COUNTRY_NAMES = sorted(COUNTRIES)
CURRENCIES = sorted(USD_RATES)
AMOUNTS = (5, 10, 20, 25, 40, 50, 75, 100, 120, 150, 200, 250, 300, 500, 750, 1000, 1500, 2500)
UNIT_PAIRS = [
    ("km", "mi", "kilometres", "miles"),
    ("mi", "km", "miles", "kilometres"),
    ("m", "ft", "metres", "feet"),
    ("ft", "m", "feet", "metres"),
    ("in", "cm", "inches", "centimetres"),
    ("cm", "in", "centimetres", "inches"),
    ("kg", "lb", "kilograms", "pounds"),
    ("lb", "kg", "pounds", "kilograms"),
    ("g", "oz", "grams", "ounces"),
    ("l", "gal", "litres", "gallons"),
    ("gal", "l", "gallons", "litres"),
    ("cup", "ml", "cups", "millilitres"),
    ("c", "f", "degrees Celsius", "degrees Fahrenheit"),
    ("f", "c", "degrees Fahrenheit", "degrees Celsius"),
]
PHRASES = (
    "hello world",
    "tool learning is fun",
    "a man a plan a canal panama",
    "strawberry",
    "open the window",
    "the quick brown fox jumps over the lazy dog",
    "small models learn fast",
    "banana bread",
    "keep calm and carry on",
    "mississippi",
    "good morning everyone",
    "data beats opinions",
)
EXPRESSIONS = (
    "{a} + {b} * {c}",
    "({a} + {b}) * {c}",
    "{a} * {b} - {c}",
    "({a} - {b}) / {c}",
    "{a} ** 2 + {b}",
    "{a} * {b} / {c}",
)
_FIELDS = string.Formatter()


@dataclass(frozen=True)
class Task:
    """One template, run by `play`:
    - `draw(rng)`: the values (a dict; a `kind` among them picks the per-kind variants below);
    - `queries`: phrasings, one of them drawn (a list), used as is (a str), or either per kind (a dict);
    - `calls`: (output name, tool name, arguments) steps. The tool name is formatted with the values;
      an argument "{x}" or "{x[key]}" is a value or an earlier output taken as is (numbers stay
      numbers), any other a constant; `arguments` may also be a function of the values;
    - `answer`: a format string (or one per kind) over the values, the outputs and what `extra(values)`
      adds after the calls."""

    name: str
    draw: Callable
    queries: list | str | dict
    calls: list
    answer: str | dict
    extra: Callable | None = None

    def play(self, rng, run) -> tuple[str, list, str]:
        """(query, [(call, result)], answer); `run(call)` executes a call and returns its Result."""
        values = self.draw(rng)
        phrasings = _of_kind(self.queries, values)
        phrasing = phrasings if isinstance(phrasings, str) else rng.choice(phrasings)
        query = phrasing.format(**values)
        steps = []
        for out, name, args in self.calls:
            if callable(args):
                args = args(values)
            else:
                args = {k: _argument(a, values) for k, a in args.items()}
            call = Call(name.format(**values), args)
            result = run(call)
            if not result.ok:
                raise RuntimeError(
                    f"tasks.synth: task {self.name} made a failing call {call}: {result.message}"
                )
            steps.append((call, result))
            values[out] = _parsed(result.output)  # later calls and the answer read it by name
        if self.extra:
            values.update(self.extra(values))
        return query, steps, _of_kind(self.answer, values).format(**values)


def _of_kind(spec, values):
    """`spec` itself, or its entry for the drawn `kind` if it is a dict."""
    return spec[values["kind"]] if isinstance(spec, dict) else spec


def _argument(spec, values):
    """An argument: "{x}" or "{x[key]}" is that value as is (numbers stay numbers), anything else a
    constant."""
    if isinstance(spec, str) and spec.startswith("{") and spec.endswith("}"):
        return _FIELDS.get_field(spec[1:-1], (), values)[0]  # str.format's own reading of "x[key]"
    return spec


def _parsed(output: str):
    """A tool's output as JSON if it is JSON, else the text."""
    try:
        return json.loads(output)
    except json.JSONDecodeError:
        return output


# ----------------------------------------------------------------------------- draws
def _pick(rng, templates, **values) -> str:
    """One of `templates` formatted with `values` (drawn first: they are arguments)."""
    return rng.choice(templates).format(**values)


def _day(rng, first="2020-01-01", span=4000) -> str:
    """A day among the `span` days from `first`, YYYY-MM-DD."""
    return (date.fromisoformat(first) + timedelta(days=rng.randrange(span))).isoformat()


def _clock(rng) -> str:
    return f"{rng.randrange(24):02d}:{rng.choice((0, 15, 30, 45)):02d}"


def _two(rng, pool, names: str) -> dict:
    """Two different items of `pool`, under the one-letter `names`."""
    return dict(zip(names, rng.sample(pool, 2)))


def _percentage(rng) -> dict:
    whole = rng.choice((40, 80, 120, 200, 250, 400, 500, 800, 1200))
    return {"w": whole, "p": rng.randint(1, whole)}


def _average(rng) -> dict:
    numbers = [rng.randint(1, 100) for _ in range(rng.randint(3, 6))]
    return {"ns": numbers, "n": ", ".join(map(str, numbers))}


def _date_add(rng) -> dict:
    day = _day(rng)
    n = rng.choice((3, 7, 10, 14, 30, 45, 90, 100, -7, -30))
    when = f"{n} days after" if n > 0 else f"{-n} days before"
    return {"d": day, "n": n, "w": when}


def _date_pair(rng) -> dict:
    """Two of four drawn days, in order (a == b is possible when the draws repeat a day)."""
    days = [_day(rng) for _ in range(4)]
    return dict(zip("ab", sorted(rng.sample(days, 2))))


def _text(rng) -> dict:
    phrase = rng.choice(PHRASES)
    kind = rng.choice(["reverse", "uppercase", "word_count", "count_char"])
    letter = rng.choice(sorted(set(phrase.replace(" ", ""))))  # one that occurs in the phrase
    return {"p": phrase, "kind": kind, "ch": letter}


def _snippet(rng) -> dict:
    n = rng.randint(5, 30)
    q, code = rng.choice(
        [
            (
                f"Use Python to compute the sum of the squares from 1 to {n}.",
                f"print(sum(i * i for i in range(1, {n + 1})))",
            ),
            (
                f"Run code to find the factorial of {n % 15 + 2}.",
                f"import math\nprint(math.factorial({n % 15 + 2}))",
            ),
            (
                f"Write a program that counts the primes below {n * 10}.",
                f"print(sum(all(k % d for d in range(2, int(k ** 0.5) + 1)) for k in range(2, {n * 10})))",
            ),
            (
                f"Compute the {n}th Fibonacci number with Python.",
                f"a, b = 0, 1\nfor _ in range({n}):\n    a, b = b, a + b\nprint(a)",
            ),
        ]
    )
    return {"q": q, "code": code}


def _warmer(values) -> dict:
    """The verdict of the warmer_city task, from the two recorded temperatures."""
    temp_a = values["wa"]["temperature"]
    temp_b = values["wb"]["temperature"]
    if temp_a > temp_b:
        verdict = f"{values['a']} is warmer"
    elif temp_b > temp_a:
        verdict = f"{values['b']} is warmer"
    else:
        verdict = "both are equally warm"
    return {"verdict": verdict}


# ----------------------------------------------------------------------------- the table
TASKS = [  # rng.choice(TASKS) picks a row: the order is part of the data
    # one call
    Task(
        "weather_now",
        lambda r: {"c": r.choice(CITY_NAMES)},
        [
            "What's the weather like in {c} right now?",
            "How warm is it in {c} at the moment?",
            "Current weather in {c}, please.",
            "Tell me the weather in {c} now.",
        ],
        [("w", "get_weather_current", {"city": "{c}"})],
        "It is {w[temperature]} °C and {w[condition]} in {w[city]} right now, with {w[humidity]}% humidity.",
    ),
    Task(
        "weather_forecast",
        lambda r: {"c": r.choice(CITY_NAMES), "d": _day(r, REFERENCE_DATE, 30)},
        [
            "What will the weather be in {c} on {d}?",
            "Forecast for {c} on {d}, please.",
            "Will it be warm in {c} on {d}?",
        ],
        [("w", "get_weather_forecast", {"city": "{c}", "date": "{d}"})],
        "On {w[date]} {w[city]} expects {w[condition]} weather, between {w[low_c]} and {w[high_c]} °C.",
    ),
    Task(
        "weekday",
        lambda r: {"d": _day(r)},
        ["What day of the week is {d}?", "Which weekday falls on {d}?", "Is {d} a weekend day?"],
        [("w", "get_weekday", {"date": "{d}"})],
        "{w[date]} is a {w[weekday]}.",
    ),
    Task(
        "country_fact",
        lambda r: {"x": r.choice(COUNTRY_NAMES), "kind": r.choice(["capital", "population", "currency"])},
        {
            "capital": ["What is the capital of {x}?", "Which city is the capital of {x}?"],
            "population": ["How many people live in {x}?", "What is the population of {x}?"],
            "currency": ["What currency does {x} use?", "Which currency is used in {x}?"],
        },
        [("r", "get_country_{kind}", {"country": "{x}"})],
        {
            "capital": "The capital of {r[country]} is {r[capital]}.",
            "population": "{r[country]} has a population of about {r[population]:,}.",
            "currency": "{r[country]} uses the {r[currency]}.",
        },
    ),
    Task(
        "city_country",
        lambda r: {"c": r.choice(CITY_NAMES)},
        ["Which country is {c} in?", "In what country is {c}?"],
        [("r", "get_city_country", {"city": "{c}"})],
        "{r[city]} is in {r[country]}.",
    ),
    Task(
        "city_distance",
        lambda r: _two(r, CITY_NAMES, "ab"),
        ["How far is {a} from {b}?", "What is the distance between {a} and {b} in km?"],
        [("r", "get_city_distance", {"city_a": "{a}", "city_b": "{b}"})],
        "{r[city_a]} and {r[city_b]} are about {r[distance_km]} km apart.",
    ),
    Task(
        "currency",
        lambda r: {"n": r.choice(AMOUNTS), **_two(r, CURRENCIES, "sd")},
        ["How much is {n} {s} in {d}?", "Convert {n} {s} to {d}.", "What do I get for {n} {s} in {d}?"],
        [("r", "convert_currency", {"amount": "{n}", "from_currency": "{s}", "to_currency": "{d}"})],
        "{r[amount]} {r[from_currency]} is {r[result]} {r[to_currency]}.",
    ),
    Task(
        "exchange_rate",
        lambda r: _two(r, CURRENCIES, "sd"),
        ["What is the exchange rate from {s} to {d}?", "How many {d} is one {s}?"],
        [("r", "get_exchange_rate", {"from_currency": "{s}", "to_currency": "{d}"})],
        "1 {r[from_currency]} = {r[rate]} {r[to_currency]}.",
    ),
    Task(
        "units",
        lambda r: {
            **dict(zip(("s", "d", "sw", "dw"), r.choice(UNIT_PAIRS))),
            "v": r.choice((1, 2, 3, 5, 8, 10, 12, 20, 25, 37, 42, 50, 100, 250)),
        },
        ["How many {dw} is {v} {sw}?", "Convert {v} {sw} to {dw}.", "What is {v} {sw} in {dw}?"],
        [("r", "convert_units", {"value": "{v}", "from_unit": "{s}", "to_unit": "{d}"})],
        "{v} {sw} is {r[result]} {dw}.",
    ),
    Task(
        "timezone",
        lambda r: {**_two(r, CITY_NAMES, "ab"), "t": _clock(r)},
        ["When it is {t} in {a}, what time is it in {b}?", "Convert {t} {a} time to {b} time."],
        [("r", "convert_timezone", {"time": "{t}", "from_city": "{a}", "to_city": "{b}"})],
        "When it is {r[time]} in {r[from_city]}, it is {r[converted_time]}{when} in {r[to_city]}.",
        lambda v: {"when": {0: "", 1: " the next day", -1: " the previous day"}[v["r"]["day_offset"]]},
    ),
    Task(
        "arithmetic",
        lambda r: {"e": _pick(r, EXPRESSIONS, a=r.randint(2, 99), b=r.randint(2, 99), c=r.randint(2, 12))},
        ["What is {e}?", "Calculate {e}.", "Please work out {e}."],
        [("r", "calculate", {"expression": "{e}"})],
        "{e} = {r[result]}.",
    ),
    Task(
        "percentage",
        _percentage,
        ["What percentage of {w} is {p}?", "{p} out of {w} is what percent?"],
        [("r", "calculate_percentage", {"part": "{p}", "whole": "{w}"})],
        "{p} is {r[percentage]}% of {w}.",
    ),
    Task(
        "average",
        _average,
        ["What is the average of {n}?", "Compute the mean of {n}."],
        [("r", "calculate_average", {"numbers": "{ns}"})],
        "The average of the {r[count]} numbers is {r[average]}.",
    ),
    Task(
        "date_add",
        _date_add,
        ["What date is {w} {d}?", "Which date comes {w} {d}?"],
        [("r", "date_add_days", {"date": "{d}", "days": "{n}"})],
        "{w} {d} is {r[result]}.",
    ),
    Task(
        "date_diff",
        _date_pair,
        ["How many days are there from {a} to {b}?", "Count the days between {a} and {b}."],
        [("r", "date_diff_days", {"start_date": "{a}", "end_date": "{b}"})],
        "There are {r[days]} days from {a} to {b}.",
    ),
    Task(
        "text_tool",
        _text,
        {
            "reverse": 'Reverse the text "{p}".',
            "uppercase": 'Write "{p}" in capital letters.',
            "word_count": 'How many words are in "{p}"?',
            "count_char": 'How many times does the letter "{ch}" appear in "{p}"?',
        },
        [
            (
                "r",
                "text_{kind}",
                lambda v: (
                    {"text": v["p"], "char": v["ch"]} if v["kind"] == "count_char" else {"text": v["p"]}
                ),
            )
        ],
        {
            "reverse": 'The result is "{r}".',
            "uppercase": 'The result is "{r}".',
            "word_count": '"{p}" has {r[words]} words.',
            "count_char": 'The letter "{ch}" appears {r[count]} times in "{p}".',
        },
    ),
    Task(
        "python_snippet",
        _snippet,
        "{q}",
        [("out", "run_python", {"code": "{code}"})],
        "The program printed {out}.",
    ),
    # several calls
    Task(
        "capital_weather",
        lambda r: {"x": r.choice(COUNTRY_NAMES)},
        ["What's the weather in the capital of {x} right now?", "How warm is it in {x}'s capital today?"],
        [
            ("cap", "get_country_capital", {"country": "{x}"}),
            ("w", "get_weather_current", {"city": "{cap[capital]}"}),
        ],
        "The capital of {x} is {cap[capital]}; it is {w[temperature]} °C and {w[condition]} there now.",
    ),
    Task(
        "city_money",
        lambda r: {"c": r.choice(CITY_NAMES), "n": r.choice(AMOUNTS)},
        [
            "I'm travelling to {c} with {n} USD. How much is that in the local currency?",
            "How much local money do I get for {n} USD in {c}?",
        ],
        [
            ("where", "get_city_country", {"city": "{c}"}),
            ("cur", "get_country_currency", {"country": "{where[country]}"}),
            (
                "r",
                "convert_currency",
                {"amount": "{n}", "from_currency": "USD", "to_currency": "{cur[currency]}"},
            ),
        ],
        "{c} is in {where[country]}, which uses the {cur[currency]}: "
        "{n} USD is {r[result]} {r[to_currency]}.",
    ),
    Task(
        "trip_forecast",
        lambda r: {"c": r.choice(CITY_NAMES), "s": _day(r, REFERENCE_DATE, 10), "n": r.randint(1, 19)},
        [
            "I arrive in {c} {n} days after {s}. Which weekday is that, and what weather should I expect?",
            "My trip to {c} starts {n} days after {s}. What day of the week is it and what is the forecast?",
        ],
        [
            ("d", "date_add_days", {"date": "{s}", "days": "{n}"}),
            ("wd", "get_weekday", {"date": "{d[result]}"}),
            ("w", "get_weather_forecast", {"city": "{c}", "date": "{d[result]}"}),
        ],
        "You arrive on {wd[weekday]}, {d[result]}; {c} expects {w[condition]} weather "
        "between {w[low_c]} and {w[high_c]} °C.",
    ),
    Task(
        "warmer_city",
        lambda r: _two(r, CITY_NAMES, "ab"),
        ["Is it warmer in {a} or in {b} right now?", "Which is warmer at the moment, {a} or {b}?"],
        [("wa", "get_weather_current", {"city": "{a}"}), ("wb", "get_weather_current", {"city": "{b}"})],
        "{a} has {wa[temperature]} °C and {b} has {wb[temperature]} °C, so {verdict}.",
        _warmer,
    ),
    Task(
        "capitals_distance",
        lambda r: _two(r, COUNTRY_NAMES, "xy"),
        [
            "How far apart are the capitals of {x} and {y}?",
            "What is the distance between the capital of {x} and the capital of {y}?",
        ],
        [
            ("cx", "get_country_capital", {"country": "{x}"}),
            ("cy", "get_country_capital", {"country": "{y}"}),
            ("d", "get_city_distance", {"city_a": "{cx[capital]}", "city_b": "{cy[capital]}"}),
        ],
        "{cx[capital]} and {cy[capital]} are about {d[distance_km]} km apart.",
    ),
    Task(
        "population_share",
        lambda r: _two(r, COUNTRY_NAMES, "xy"),
        [
            "What percentage of {x}'s population is {y}'s population?",
            "{y}'s population is what percent of {x}'s?",
        ],
        [
            ("px", "get_country_population", {"country": "{x}"}),
            ("py", "get_country_population", {"country": "{y}"}),
            ("r", "calculate_percentage", {"part": "{py[population]}", "whole": "{px[population]}"}),
        ],
        "{y} has {py[population]:,} people and {x} has {px[population]:,}, so {r[percentage]}%.",
    ),
    Task(
        "capital_report",
        lambda r: {"c": r.choice(CITY_NAMES)},
        [
            "What's the temperature in Fahrenheit in the capital of the country {c} is in, "
            "and how far is it from {c}?",
            "Find the capital of {c}'s country, its temperature in Fahrenheit, and its distance from {c}.",
        ],
        [
            ("where", "get_city_country", {"city": "{c}"}),
            ("cap", "get_country_capital", {"country": "{where[country]}"}),
            ("w", "get_weather_current", {"city": "{cap[capital]}", "unit": "f"}),
            ("d", "get_city_distance", {"city_a": "{c}", "city_b": "{cap[capital]}"}),
        ],
        "{c} is in {where[country]}, whose capital {cap[capital]} has {w[temperature]} °F now "
        "and is {d[distance_km]} km away.",
    ),
    Task(
        "rate_and_convert",
        lambda r: {"n": r.choice(AMOUNTS), **_two(r, CURRENCIES, "sd")},
        [
            "What is the {s} to {d} rate, and how much is {n} {s} in {d}?",
            "Give me the exchange rate from {s} to {d} and convert {n} {s}.",
        ],
        [
            ("rate", "get_exchange_rate", {"from_currency": "{s}", "to_currency": "{d}"}),
            ("r", "convert_currency", {"amount": "{n}", "from_currency": "{s}", "to_currency": "{d}"}),
        ],
        "1 {s} = {rate[rate]} {d}, so {n} {s} is {r[result]} {d}.",
    ),
    Task(
        "meeting_time",
        lambda r: {**_two(r, CITY_NAMES, "ab"), "t": _clock(r), "d": _day(r)},
        ["A call is set for {t} in {a} on {d}. What time is that in {b}, and what weekday is {d}?"],
        [
            ("r", "convert_timezone", {"time": "{t}", "from_city": "{a}", "to_city": "{b}"}),
            ("wd", "get_weekday", {"date": "{d}"}),
        ],
        "{d} is a {wd[weekday]}; {t} in {a} is {r[converted_time]}{when} in {b}.",
        lambda v: {"when": {0: "", 1: " (next day)", -1: " (previous day)"}[v["r"]["day_offset"]]},
    ),
]
