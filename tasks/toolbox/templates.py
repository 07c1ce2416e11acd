"""Task templates over the toolbox, for the synthetic trajectory generator (`tasks.synth`).

A task is `task(rng) -> (query, script)`: the user's question, and a generator that yields the
calls a careful assistant makes (`Call`s), receives each call's output (parsed JSON, or the text)
and finally returns the answer text built from those outputs. Values are drawn from the toolbox's
own tables, so every call is valid and every answer is true to the recorded outputs. Phrasings
vary, the structure repeats: a small model can learn it in minutes.
"""
from __future__ import annotations

from datetime import date, timedelta

from tl.calls import Call
from tasks.toolbox.facts import CITIES, COUNTRIES, REFERENCE_DATE, USD_RATES

CITY_NAMES = sorted(CITIES)
COUNTRY_NAMES = sorted(COUNTRIES)
CURRENCIES = sorted(USD_RATES)
AMOUNTS = (5, 10, 20, 25, 40, 50, 75, 100, 120, 150, 200, 250, 300, 500, 750, 1000, 1500, 2500)
UNIT_PAIRS = [("km", "mi", "kilometres", "miles"), ("mi", "km", "miles", "kilometres"), ("m", "ft", "metres", "feet"),
              ("ft", "m", "feet", "metres"), ("in", "cm", "inches", "centimetres"), ("cm", "in", "centimetres", "inches"),
              ("kg", "lb", "kilograms", "pounds"), ("lb", "kg", "pounds", "kilograms"), ("g", "oz", "grams", "ounces"),
              ("l", "gal", "litres", "gallons"), ("gal", "l", "gallons", "litres"), ("cup", "ml", "cups", "millilitres"),
              ("c", "f", "degrees Celsius", "degrees Fahrenheit"), ("f", "c", "degrees Fahrenheit", "degrees Celsius")]
PHRASES = ("hello world", "tool learning is fun", "a man a plan a canal panama", "strawberry", "open the window",
           "the quick brown fox jumps over the lazy dog", "small models learn fast", "banana bread",
           "keep calm and carry on", "mississippi", "good morning everyone", "data beats opinions")


def _pick(rng, templates, **values) -> str:
    return rng.choice(templates).format(**values)


def _day(rng, first="2020-01-01", span=4000) -> str:
    return (date.fromisoformat(first) + timedelta(days=rng.randrange(span))).isoformat()


def _forecast_day(rng) -> str:
    return _day(rng, REFERENCE_DATE, 30)


def _clock(rng) -> str:
    return f"{rng.randrange(24):02d}:{rng.choice((0, 15, 30, 45)):02d}"


def _two(rng, names):
    a, b = rng.sample(names, 2)
    return a, b


# ----------------------------------------------------------------------------- one call


def weather_now(rng):
    city = rng.choice(CITY_NAMES)
    q = _pick(rng, ["What's the weather like in {c} right now?", "How warm is it in {c} at the moment?",
                    "Current weather in {c}, please.", "Tell me the weather in {c} now."], c=city)

    def script():
        w = yield Call("get_weather_current", {"city": city})
        return f"It is {w['temperature']} °C and {w['condition']} in {w['city']} right now, with {w['humidity']}% humidity."
    return q, script()


def weather_forecast(rng):
    city, day = rng.choice(CITY_NAMES), _forecast_day(rng)
    q = _pick(rng, ["What will the weather be in {c} on {d}?", "Forecast for {c} on {d}, please.",
                    "Will it be warm in {c} on {d}?"], c=city, d=day)

    def script():
        w = yield Call("get_weather_forecast", {"city": city, "date": day})
        return f"On {w['date']} {w['city']} expects {w['condition']} weather, between {w['low_c']} and {w['high_c']} °C."
    return q, script()


def weekday(rng):
    day = _day(rng)
    q = _pick(rng, ["What day of the week is {d}?", "Which weekday falls on {d}?", "Is {d} a weekend day?"], d=day)

    def script():
        w = yield Call("get_weekday", {"date": day})
        return f"{w['date']} is a {w['weekday']}."
    return q, script()


def country_fact(rng):
    country = rng.choice(COUNTRY_NAMES)
    kind = rng.choice(["capital", "population", "currency"])
    q = _pick(rng, {"capital": ["What is the capital of {x}?", "Which city is the capital of {x}?"],
                    "population": ["How many people live in {x}?", "What is the population of {x}?"],
                    "currency": ["What currency does {x} use?", "Which currency is used in {x}?"]}[kind], x=country)

    def script():
        r = yield Call(f"get_country_{kind}", {"country": country})
        if kind == "capital":
            return f"The capital of {r['country']} is {r['capital']}."
        if kind == "population":
            return f"{r['country']} has a population of about {r['population']:,}."
        return f"{r['country']} uses the {r['currency']}."
    return q, script()


def city_country(rng):
    city = rng.choice(CITY_NAMES)
    q = _pick(rng, ["Which country is {c} in?", "In what country is {c}?"], c=city)

    def script():
        r = yield Call("get_city_country", {"city": city})
        return f"{r['city']} is in {r['country']}."
    return q, script()


def city_distance(rng):
    a, b = _two(rng, CITY_NAMES)
    q = _pick(rng, ["How far is {a} from {b}?", "What is the distance between {a} and {b} in km?"], a=a, b=b)

    def script():
        r = yield Call("get_city_distance", {"city_a": a, "city_b": b})
        return f"{r['city_a']} and {r['city_b']} are about {r['distance_km']} km apart."
    return q, script()


def currency(rng):
    amount, (src, dst) = rng.choice(AMOUNTS), _two(rng, CURRENCIES)
    q = _pick(rng, ["How much is {n} {s} in {d}?", "Convert {n} {s} to {d}.", "What do I get for {n} {s} in {d}?"],
              n=amount, s=src, d=dst)

    def script():
        r = yield Call("convert_currency", {"amount": amount, "from_currency": src, "to_currency": dst})
        return f"{r['amount']} {r['from_currency']} is {r['result']} {r['to_currency']}."
    return q, script()


def exchange_rate(rng):
    src, dst = _two(rng, CURRENCIES)
    q = _pick(rng, ["What is the exchange rate from {s} to {d}?", "How many {d} is one {s}?"], s=src, d=dst)

    def script():
        r = yield Call("get_exchange_rate", {"from_currency": src, "to_currency": dst})
        return f"1 {r['from_currency']} = {r['rate']} {r['to_currency']}."
    return q, script()


def units(rng):
    src, dst, src_word, dst_word = rng.choice(UNIT_PAIRS)
    value = rng.choice((1, 2, 3, 5, 8, 10, 12, 20, 25, 37, 42, 50, 100, 250))
    q = _pick(rng, ["How many {dw} is {v} {sw}?", "Convert {v} {sw} to {dw}.", "What is {v} {sw} in {dw}?"],
              v=value, sw=src_word, dw=dst_word)

    def script():
        r = yield Call("convert_units", {"value": value, "from_unit": src, "to_unit": dst})
        return f"{value} {src_word} is {r['result']} {dst_word}."
    return q, script()


def timezone(rng):
    (a, b), t = _two(rng, CITY_NAMES), _clock(rng)
    q = _pick(rng, ["When it is {t} in {a}, what time is it in {b}?", "Convert {t} {a} time to {b} time."], t=t, a=a, b=b)

    def script():
        r = yield Call("convert_timezone", {"time": t, "from_city": a, "to_city": b})
        when = {0: "", 1: " the next day", -1: " the previous day"}[r["day_offset"]]
        return f"When it is {r['time']} in {r['from_city']}, it is {r['converted_time']}{when} in {r['to_city']}."
    return q, script()


def arithmetic(rng):
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 12)
    expr = rng.choice([f"{a} + {b} * {c}", f"({a} + {b}) * {c}", f"{a} * {b} - {c}", f"({a} - {b}) / {c}",
                       f"{a} ** 2 + {b}", f"{a} * {b} / {c}"])
    q = _pick(rng, ["What is {e}?", "Calculate {e}.", "Please work out {e}."], e=expr)

    def script():
        r = yield Call("calculate", {"expression": expr})
        return f"{expr} = {r['result']}."
    return q, script()


def percentage(rng):
    whole = rng.choice((40, 80, 120, 200, 250, 400, 500, 800, 1200))
    part = rng.randint(1, whole)
    q = _pick(rng, ["What percentage of {w} is {p}?", "{p} out of {w} is what percent?"], p=part, w=whole)

    def script():
        r = yield Call("calculate_percentage", {"part": part, "whole": whole})
        return f"{part} is {r['percentage']}% of {whole}."
    return q, script()


def average(rng):
    numbers = [rng.randint(1, 100) for _ in range(rng.randint(3, 6))]
    q = _pick(rng, ["What is the average of {n}?", "Compute the mean of {n}."], n=", ".join(map(str, numbers)))

    def script():
        r = yield Call("calculate_average", {"numbers": numbers})
        return f"The average of the {r['count']} numbers is {r['average']}."
    return q, script()


def date_add(rng):
    day, n = _day(rng), rng.choice((3, 7, 10, 14, 30, 45, 90, 100, -7, -30))
    when = f"{n} days after" if n > 0 else f"{-n} days before"
    q = _pick(rng, ["What date is {w} {d}?", "Which date comes {w} {d}?"], w=when, d=day)

    def script():
        r = yield Call("date_add_days", {"date": day, "days": n})
        return f"{when.capitalize()} {day} is {r['result']}."
    return q, script()


def date_diff(rng):
    a, b = sorted(_two(rng, [_day(rng) for _ in range(4)]))
    q = _pick(rng, ["How many days are there from {a} to {b}?", "Count the days between {a} and {b}."], a=a, b=b)

    def script():
        r = yield Call("date_diff_days", {"start_date": a, "end_date": b})
        return f"There are {r['days']} days from {a} to {b}."
    return q, script()


def text_tool(rng):
    phrase, kind = rng.choice(PHRASES), rng.choice(["reverse", "uppercase", "word_count", "count_char"])
    char = rng.choice(sorted(set(phrase.replace(" ", ""))))
    q = {"reverse": f'Reverse the text "{phrase}".', "uppercase": f'Write "{phrase}" in capital letters.',
         "word_count": f'How many words are in "{phrase}"?',
         "count_char": f'How many times does the letter "{char}" appear in "{phrase}"?'}[kind]

    def script():
        args = {"text": phrase, "char": char} if kind == "count_char" else {"text": phrase}
        r = yield Call(f"text_{kind}", args)
        if kind == "word_count":
            return f'"{phrase}" has {r["words"]} words.'
        if kind == "count_char":
            return f'The letter "{char}" appears {r["count"]} times in "{phrase}".'
        return f'The result is "{r}".'
    return q, script()


def python_snippet(rng):
    n = rng.randint(5, 30)
    q, code = rng.choice([
        (f"Use Python to compute the sum of the squares from 1 to {n}.", f"print(sum(i * i for i in range(1, {n + 1})))"),
        (f"Run code to find the factorial of {n % 15 + 2}.", f"import math\nprint(math.factorial({n % 15 + 2}))"),
        (f"Write a program that counts the primes below {n * 10}.",
         f"print(sum(all(k % d for d in range(2, int(k ** 0.5) + 1)) for k in range(2, {n * 10})))"),
        (f"Compute the {n}th Fibonacci number with Python.", f"a, b = 0, 1\nfor _ in range({n}):\n    a, b = b, a + b\nprint(a)"),
    ])

    def script():
        out = yield Call("run_python", {"code": code})
        return f"The program printed {out}."
    return q, script()


# ----------------------------------------------------------------------------- several calls


def capital_weather(rng):
    country = rng.choice(COUNTRY_NAMES)
    q = _pick(rng, ["What's the weather in the capital of {x} right now?", "How warm is it in {x}'s capital today?"],
              x=country)

    def script():
        cap = yield Call("get_country_capital", {"country": country})
        w = yield Call("get_weather_current", {"city": cap["capital"]})
        return f"The capital of {country} is {cap['capital']}; it is {w['temperature']} °C and {w['condition']} there now."
    return q, script()


def city_money(rng):
    city, amount = rng.choice(CITY_NAMES), rng.choice(AMOUNTS)
    q = _pick(rng, ["I'm travelling to {c} with {n} USD. How much is that in the local currency?",
                    "How much local money do I get for {n} USD in {c}?"], c=city, n=amount)

    def script():
        where = yield Call("get_city_country", {"city": city})
        cur = yield Call("get_country_currency", {"country": where["country"]})
        r = yield Call("convert_currency", {"amount": amount, "from_currency": "USD", "to_currency": cur["currency"]})
        return f"{city} is in {where['country']}, which uses the {cur['currency']}: {amount} USD is {r['result']} {r['to_currency']}."
    return q, script()


def trip_forecast(rng):
    city, start, n = rng.choice(CITY_NAMES), _day(rng, REFERENCE_DATE, 10), rng.randint(1, 19)
    q = _pick(rng, ["I arrive in {c} {n} days after {s}. Which weekday is that, and what weather should I expect?",
                    "My trip to {c} starts {n} days after {s}. What day of the week is it and what is the forecast?"],
              c=city, n=n, s=start)

    def script():
        d = yield Call("date_add_days", {"date": start, "days": n})
        wd = yield Call("get_weekday", {"date": d["result"]})
        w = yield Call("get_weather_forecast", {"city": city, "date": d["result"]})
        return (f"You arrive on {wd['weekday']}, {d['result']}; {city} expects {w['condition']} weather "
                f"between {w['low_c']} and {w['high_c']} °C.")
    return q, script()


def warmer_city(rng):
    a, b = _two(rng, CITY_NAMES)
    q = _pick(rng, ["Is it warmer in {a} or in {b} right now?", "Which is warmer at the moment, {a} or {b}?"], a=a, b=b)

    def script():
        wa = yield Call("get_weather_current", {"city": a})
        wb = yield Call("get_weather_current", {"city": b})
        ta, tb = wa["temperature"], wb["temperature"]
        verdict = f"{a} is warmer" if ta > tb else f"{b} is warmer" if tb > ta else "both are equally warm"
        return f"{a} has {ta} °C and {b} has {tb} °C, so {verdict}."
    return q, script()


def capitals_distance(rng):
    x, y = _two(rng, COUNTRY_NAMES)
    q = _pick(rng, ["How far apart are the capitals of {x} and {y}?", "What is the distance between the capital of {x} and the capital of {y}?"],
              x=x, y=y)

    def script():
        cx = yield Call("get_country_capital", {"country": x})
        cy = yield Call("get_country_capital", {"country": y})
        d = yield Call("get_city_distance", {"city_a": cx["capital"], "city_b": cy["capital"]})
        return f"{cx['capital']} and {cy['capital']} are about {d['distance_km']} km apart."
    return q, script()


def population_share(rng):
    x, y = _two(rng, COUNTRY_NAMES)
    q = _pick(rng, ["What percentage of {x}'s population is {y}'s population?",
                    "{y}'s population is what percent of {x}'s?"], x=x, y=y)

    def script():
        px = yield Call("get_country_population", {"country": x})
        py = yield Call("get_country_population", {"country": y})
        r = yield Call("calculate_percentage", {"part": py["population"], "whole": px["population"]})
        return f"{y} has {py['population']:,} people and {x} has {px['population']:,}, so {r['percentage']}%."
    return q, script()


def capital_report(rng):
    city = rng.choice(CITY_NAMES)
    q = _pick(rng, ["What's the temperature in Fahrenheit in the capital of the country {c} is in, and how far is it from {c}?",
                    "Find the capital of {c}'s country, its temperature in Fahrenheit, and its distance from {c}."], c=city)

    def script():
        where = yield Call("get_city_country", {"city": city})
        cap = yield Call("get_country_capital", {"country": where["country"]})
        w = yield Call("get_weather_current", {"city": cap["capital"], "unit": "f"})
        d = yield Call("get_city_distance", {"city_a": city, "city_b": cap["capital"]})
        return (f"{city} is in {where['country']}, whose capital {cap['capital']} has {w['temperature']} °F now "
                f"and is {d['distance_km']} km away.")
    return q, script()


def rate_and_convert(rng):
    amount, (src, dst) = rng.choice(AMOUNTS), _two(rng, CURRENCIES)
    q = _pick(rng, ["What is the {s} to {d} rate, and how much is {n} {s} in {d}?",
                    "Give me the exchange rate from {s} to {d} and convert {n} {s}."], s=src, d=dst, n=amount)

    def script():
        rate = yield Call("get_exchange_rate", {"from_currency": src, "to_currency": dst})
        r = yield Call("convert_currency", {"amount": amount, "from_currency": src, "to_currency": dst})
        return f"1 {src} = {rate['rate']} {dst}, so {amount} {src} is {r['result']} {dst}."
    return q, script()


def meeting_time(rng):
    (a, b), t, day = _two(rng, CITY_NAMES), _clock(rng), _day(rng)
    q = _pick(rng, ["A call is set for {t} in {a} on {d}. What time is that in {b}, and what weekday is {d}?"],
              t=t, a=a, b=b, d=day)

    def script():
        r = yield Call("convert_timezone", {"time": t, "from_city": a, "to_city": b})
        wd = yield Call("get_weekday", {"date": day})
        when = {0: "", 1: " (next day)", -1: " (previous day)"}[r["day_offset"]]
        return f"{day} is a {wd['weekday']}; {t} in {a} is {r['converted_time']}{when} in {b}."
    return q, script()


TASKS = [weather_now, weather_forecast, weekday, country_fact, city_country, city_distance, currency, exchange_rate,
         units, timezone, arithmetic, percentage, average, date_add, date_diff, text_tool, python_snippet,
         capital_weather, city_money, trip_forecast, warmer_city, capitals_distance, population_share,
         capital_report, rate_and_convert, meeting_time]
