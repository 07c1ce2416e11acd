"""The toolbox's functions and the fixed facts they read: deterministic, offline, each parameter
described in its `Annotated` hint so that their schemas are read off them
(`tasks.toolbox.tool_from_function`).

Every function is a pure function of its arguments and the tables below; bad values raise
ValueError with a short message, which the sandbox turns into tool-call-failure feedback. The
figures are rounded public values (populations ~2023, exchange rates of one reference day), frozen
so that the synthetic data is byte-reproducible and a re-executed call gives the recorded output:
plausible, not authoritative. Names come in families that share prefixes (`get_weather_current` /
`get_weather_forecast` / `get_weekday`, `convert_*`, `get_country_*`, `calculate*`, `date_*`,
`text_*`) so that picking the right one is a matter of a few key tokens, which is what PKT weights.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import zlib
from contextlib import redirect_stdout
from datetime import date as _date
from datetime import timedelta
from typing import Annotated

REFERENCE_DATE = "2025-01-15"  # the toolbox's "today": no output depends on when it ran
FORECAST_DAYS = 30  # forecasts exist for REFERENCE_DATE .. REFERENCE_DATE + 29 days
MAX_PRINTED_CHARS = 100_000  # run_python stops code that prints more than this

COUNTRIES = {  # country -> (capital, population, currency code)
    "Argentina": ("Buenos Aires", 46_650_000, "ARS"),
    "Australia": ("Canberra", 26_640_000, "AUD"),
    "Brazil": ("Brasilia", 216_420_000, "BRL"),
    "Canada": ("Ottawa", 40_100_000, "CAD"),
    "China": ("Beijing", 1_410_710_000, "CNY"),
    "Egypt": ("Cairo", 112_720_000, "EGP"),
    "France": ("Paris", 68_170_000, "EUR"),
    "Germany": ("Berlin", 84_480_000, "EUR"),
    "India": ("New Delhi", 1_428_630_000, "INR"),
    "Italy": ("Rome", 58_870_000, "EUR"),
    "Japan": ("Tokyo", 124_520_000, "JPY"),
    "Kenya": ("Nairobi", 55_100_000, "KES"),
    "Mexico": ("Mexico City", 128_460_000, "MXN"),
    "Norway": ("Oslo", 5_520_000, "NOK"),
    "Russia": ("Moscow", 143_830_000, "RUB"),
    "Singapore": ("Singapore", 5_920_000, "SGD"),
    "South Africa": ("Pretoria", 60_410_000, "ZAR"),
    "South Korea": ("Seoul", 51_710_000, "KRW"),
    "Spain": ("Madrid", 48_590_000, "EUR"),
    "Sweden": ("Stockholm", 10_540_000, "SEK"),
    "Switzerland": ("Bern", 8_850_000, "CHF"),
    "Turkey": ("Ankara", 85_330_000, "TRY"),
    "United Kingdom": ("London", 68_350_000, "GBP"),
    "United States": ("Washington", 334_910_000, "USD"),
}
CITIES = {  # city -> (country, latitude, longitude, UTC offset in hours; standard time, no DST)
    "Ankara": ("Turkey", 39.93, 32.86, 3.0),
    "Barcelona": ("Spain", 41.39, 2.17, 1.0),
    "Beijing": ("China", 39.90, 116.41, 8.0),
    "Berlin": ("Germany", 52.52, 13.40, 1.0),
    "Bern": ("Switzerland", 46.95, 7.45, 1.0),
    "Brasilia": ("Brazil", -15.79, -47.88, -3.0),
    "Buenos Aires": ("Argentina", -34.60, -58.38, -3.0),
    "Cairo": ("Egypt", 30.04, 31.24, 2.0),
    "Canberra": ("Australia", -35.28, 149.13, 10.0),
    "Cape Town": ("South Africa", -33.92, 18.42, 2.0),
    "Chicago": ("United States", 41.88, -87.63, -6.0),
    "Istanbul": ("Turkey", 41.01, 28.98, 3.0),
    "London": ("United Kingdom", 51.51, -0.13, 0.0),
    "Los Angeles": ("United States", 34.05, -118.24, -8.0),
    "Lyon": ("France", 45.76, 4.84, 1.0),
    "Madrid": ("Spain", 40.42, -3.70, 1.0),
    "Manchester": ("United Kingdom", 53.48, -2.24, 0.0),
    "Melbourne": ("Australia", -37.81, 144.96, 10.0),
    "Mexico City": ("Mexico", 19.43, -99.13, -6.0),
    "Milan": ("Italy", 45.46, 9.19, 1.0),
    "Moscow": ("Russia", 55.76, 37.62, 3.0),
    "Mumbai": ("India", 19.08, 72.88, 5.5),
    "Munich": ("Germany", 48.14, 11.58, 1.0),
    "Nairobi": ("Kenya", -1.29, 36.82, 3.0),
    "New Delhi": ("India", 28.61, 77.21, 5.5),
    "New York": ("United States", 40.71, -74.01, -5.0),
    "Osaka": ("Japan", 34.69, 135.50, 9.0),
    "Oslo": ("Norway", 59.91, 10.75, 1.0),
    "Ottawa": ("Canada", 45.42, -75.70, -5.0),
    "Paris": ("France", 48.86, 2.35, 1.0),
    "Pretoria": ("South Africa", -25.75, 28.19, 2.0),
    "Rome": ("Italy", 41.90, 12.50, 1.0),
    "Sao Paulo": ("Brazil", -23.55, -46.63, -3.0),
    "Seoul": ("South Korea", 37.57, 126.98, 9.0),
    "Shanghai": ("China", 31.23, 121.47, 8.0),
    "Singapore": ("Singapore", 1.35, 103.82, 8.0),
    "Stockholm": ("Sweden", 59.33, 18.07, 1.0),
    "Sydney": ("Australia", -33.87, 151.21, 10.0),
    "Tokyo": ("Japan", 35.68, 139.69, 9.0),
    "Toronto": ("Canada", 43.65, -79.38, -5.0),
    "Vancouver": ("Canada", 49.28, -123.12, -8.0),
    "Washington": ("United States", 38.91, -77.04, -5.0),
    "Zurich": ("Switzerland", 47.38, 8.54, 1.0),
}
USD_RATES = {  # currency code -> units per 1 USD on the reference day
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 151.2,
    "CNY": 7.24,
    "INR": 83.3,
    "CAD": 1.36,
    "AUD": 1.52,
    "BRL": 5.05,
    "MXN": 16.9,
    "CHF": 0.9,
    "SEK": 10.6,
    "NOK": 10.8,
    "KRW": 1350.0,
    "SGD": 1.35,
    "ZAR": 18.7,
    "EGP": 47.2,
    "KES": 131.0,
    "RUB": 92.5,
    "TRY": 32.2,
    "ARS": 870.0,
}
UNITS = {  # unit -> (dimension, size in the dimension's base unit); temperatures are handled apart
    "mm": ("length", 0.001),
    "cm": ("length", 0.01),
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "in": ("length", 0.0254),
    "ft": ("length", 0.3048),
    "yd": ("length", 0.9144),
    "mi": ("length", 1609.344),
    "mg": ("mass", 0.001),
    "g": ("mass", 1.0),
    "kg": ("mass", 1000.0),
    "oz": ("mass", 28.349523125),
    "lb": ("mass", 453.59237),
    "ml": ("volume", 0.001),
    "l": ("volume", 1.0),
    "gal": ("volume", 3.785411784),
    "cup": ("volume", 0.2365882365),
}
TEMPERATURE_UNITS = ("c", "f", "k")
WEATHER_CONDITIONS = ("sunny", "partly cloudy", "cloudy", "light rain", "rain", "windy", "foggy", "snow")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_COUNTRY_ALIASES = {
    "usa": "United States",
    "us": "United States",
    "uk": "United Kingdom",
    "korea": "South Korea",
    "britain": "United Kingdom",
}


def _lookup(table: dict, name, what: str, aliases: dict | None = None) -> str:
    """Case-insensitive key lookup; ValueError naming the bad value otherwise."""
    if not isinstance(name, str):
        raise ValueError(f"{what} must be a name, got {name!r}")
    key = name.strip().lower()
    for k in table:
        if k.lower() == key:
            return k
    if aliases and key in aliases:
        return aliases[key]
    raise ValueError(f"unknown {what} {name!r}")


def _city(name) -> str:
    return _lookup(CITIES, name, "city")


def _country(name) -> str:
    return _lookup(COUNTRIES, name, "country", _COUNTRY_ALIASES)


def _parse_date(text, what: str = "date") -> _date:
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        raise ValueError(f"{what} must be written YYYY-MM-DD, got {text!r}")
    try:
        return _date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a calendar date") from None


def _stable_int(*parts) -> int:
    """A hash that is the same in every process and run (unlike hash(str))."""
    return zlib.crc32("|".join(str(p) for p in parts).encode())


def _sig(x: float, digits: int = 6) -> float | int:
    """Round to `digits` significant digits; whole numbers come back as int (100.0 -> 100)."""
    y = float(f"{x:.{digits}g}")
    return int(y) if y.is_integer() and abs(y) < 1e15 else y


# ----------------------------------------------------------------------------- weather and dates
def _weather(city: str, day: _date) -> tuple[int, str, int]:
    """(temperature °C, condition, humidity %) for a city on a day: a seasonal curve by latitude
    plus a fixed pseudo-random wobble, so every (city, day) has one answer."""
    _, lat, _, _ = CITIES[city]
    # Annual mean falls with latitude, the seasonal swing grows with it; southern seasons flip.
    season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 200) / 365.25)
    if lat < 0:
        season = -season
    h = _stable_int(city, day.isoformat())
    temp = round(28 - 0.35 * abs(lat) + 0.18 * abs(lat) * season + (h % 7) - 3)
    condition = WEATHER_CONDITIONS[(h >> 8) % len(WEATHER_CONDITIONS)]
    if condition == "snow" and temp > 2:
        condition = "cloudy"
    elif condition in ("rain", "light rain") and temp < 0:
        condition = "snow"
    return temp, condition, 35 + (h >> 16) % 60


def get_weather_current(
    city: Annotated[str, 'City name, e.g. "Paris".'],
    unit: Annotated[str, 'Temperature unit, "c" (default) or "f".'] = "c",
) -> dict:
    """Current weather in a city."""
    city = _city(city)
    if unit not in ("c", "f"):
        raise ValueError(f"unit must be 'c' or 'f', got {unit!r}")
    temp, condition, humidity = _weather(city, _parse_date(REFERENCE_DATE))
    if unit == "f":
        temp = round(temp * 9 / 5 + 32)
    return {
        "city": city,
        "temperature": temp,
        "unit": unit.upper(),
        "condition": condition,
        "humidity": humidity,
    }


def get_weather_forecast(
    city: Annotated[str, 'City name, e.g. "Tokyo".'], date: Annotated[str, "Day of the forecast, YYYY-MM-DD."]
) -> dict:
    """Weather forecast for a city on a given day (up to 30 days ahead)."""
    city = _city(city)
    day, first = _parse_date(date), _parse_date(REFERENCE_DATE)
    if not 0 <= (day - first).days < FORECAST_DAYS:
        last = first + timedelta(days=FORECAST_DAYS - 1)
        raise ValueError(f"forecasts are available from {first} to {last}, got {date!r}")
    temp, condition, humidity = _weather(city, day)
    spread = 3 + _stable_int(city, date, "spread") % 6
    return {
        "city": city,
        "date": day.isoformat(),
        "condition": condition,
        "high_c": temp + spread // 2,
        "low_c": temp - (spread - spread // 2),
        "humidity": humidity,
    }


def get_weekday(date: Annotated[str, "The date, YYYY-MM-DD."]) -> dict:
    """Day of the week of a date."""
    day = _parse_date(date)
    return {"date": day.isoformat(), "weekday": WEEKDAYS[day.weekday()]}


def date_add_days(
    date: Annotated[str, "Start date, YYYY-MM-DD."], days: Annotated[int, "Number of days to add."]
) -> dict:
    """Add a number of days to a date (negative to go back)."""
    if abs(days) > 100_000:
        raise ValueError(f"days must be within ±100000, got {days}")
    day = _parse_date(date)
    return {"date": day.isoformat(), "days": days, "result": (day + timedelta(days=days)).isoformat()}


def date_diff_days(
    start_date: Annotated[str, "First date, YYYY-MM-DD."],
    end_date: Annotated[str, "Second date, YYYY-MM-DD."],
) -> dict:
    """Number of days from one date to another."""
    start = _parse_date(start_date, "start_date")
    end = _parse_date(end_date, "end_date")
    return {"start_date": start.isoformat(), "end_date": end.isoformat(), "days": (end - start).days}


# ----------------------------------------------------------------------------- countries and cities
def _country_fact(country, key: str) -> dict:
    """{"country", key}: one of COUNTRIES' columns, named "capital", "population" or "currency"."""
    country = _country(country)
    column = ("capital", "population", "currency").index(key)
    return {"country": country, key: COUNTRIES[country][column]}


def get_country_capital(country: Annotated[str, 'Country name, e.g. "Japan".']) -> dict:
    """Capital city of a country."""
    return _country_fact(country, "capital")


def get_country_population(country: Annotated[str, 'Country name, e.g. "Brazil".']) -> dict:
    """Population of a country."""
    return _country_fact(country, "population")


def get_country_currency(country: Annotated[str, 'Country name, e.g. "Sweden".']) -> dict:
    """Currency code used in a country."""
    return _country_fact(country, "currency")


def get_city_country(city: Annotated[str, 'City name, e.g. "Osaka".']) -> dict:
    """Country a city is in."""
    city = _city(city)
    return {"city": city, "country": CITIES[city][0]}


def get_city_distance(city_a: Annotated[str, "First city."], city_b: Annotated[str, "Second city."]) -> dict:
    """Great-circle distance between two cities in kilometres."""
    a = _city(city_a)
    b = _city(city_b)
    _, lat1, lon1, _ = CITIES[a]
    _, lat2, lon2, _ = CITIES[b]
    # the haversine formula on a sphere of the Earth's mean radius, 6371 km
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    delta_lon = math.radians(lon2 - lon1)
    hav = math.sin((phi2 - phi1) / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(delta_lon / 2) ** 2
    return {"city_a": a, "city_b": b, "distance_km": round(2 * 6371.0 * math.asin(math.sqrt(hav)))}


# ----------------------------------------------------------------------------- conversions
def _rate(from_currency: str, to_currency: str) -> tuple[str, str, float]:
    """(source code, target code, target units per source unit), the codes normalised."""
    codes = []
    for code in (from_currency, to_currency):
        if not isinstance(code, str) or code.strip().upper() not in USD_RATES:
            raise ValueError(f"unknown currency code {code!r}; use ISO codes like 'USD' or 'EUR'")
        codes.append(code.strip().upper())
    return codes[0], codes[1], USD_RATES[codes[1]] / USD_RATES[codes[0]]


def convert_currency(
    amount: Annotated[float, "Amount to convert."],
    from_currency: Annotated[str, 'ISO code of the source currency, e.g. "USD".'],
    to_currency: Annotated[str, 'ISO code of the target currency, e.g. "EUR".'],
) -> dict:
    """Convert an amount of money between currencies at the reference-day rate."""
    src, dst, rate = _rate(from_currency, to_currency)
    return {"amount": amount, "from_currency": src, "to_currency": dst, "result": round(amount * rate, 2)}


def get_exchange_rate(
    from_currency: Annotated[str, "ISO code of the source currency."],
    to_currency: Annotated[str, "ISO code of the target currency."],
) -> dict:
    """Exchange rate between two currencies on the reference day."""
    src, dst, rate = _rate(from_currency, to_currency)
    return {"from_currency": src, "to_currency": dst, "rate": _sig(rate)}


def convert_units(
    value: Annotated[float, "The quantity to convert."],
    from_unit: Annotated[
        str, "Source unit: mm, cm, m, km, in, ft, yd, mi, mg, g, kg, oz, lb, ml, l, gal, cup, c, f or k."
    ],
    to_unit: Annotated[str, "Target unit, of the same kind."],
) -> dict:
    """Convert a length, mass, volume or temperature between units."""
    src = str(from_unit).strip().lower()
    dst = str(to_unit).strip().lower()
    for u in (src, dst):
        if u not in UNITS and u not in TEMPERATURE_UNITS:
            raise ValueError(f"unknown unit {u!r}")
    one_is_temperature = (src in TEMPERATURE_UNITS) != (dst in TEMPERATURE_UNITS)
    other_dimension = src in UNITS and dst in UNITS and UNITS[src][0] != UNITS[dst][0]
    if one_is_temperature or other_dimension:
        raise ValueError(f"cannot convert {src} to {dst}")
    if src in TEMPERATURE_UNITS:  # by way of kelvin
        kelvin = {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[src]
        result = round({"c": kelvin - 273.15, "f": (kelvin - 273.15) * 9 / 5 + 32, "k": kelvin}[dst], 2)
    else:
        result = value * UNITS[src][1] / UNITS[dst][1]
    return {"value": value, "from_unit": src, "to_unit": dst, "result": _sig(result)}


def convert_timezone(
    time: Annotated[str, "Local time in from_city, HH:MM (24-hour)."],
    from_city: Annotated[str, "City where the time is given."],
    to_city: Annotated[str, "City to convert to."],
) -> dict:
    """Convert a clock time in one city to the local time in another city."""
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(time).strip())
    if m is None:
        raise ValueError(f"time must be HH:MM (24-hour), got {time!r}")
    src = _city(from_city)
    dst = _city(to_city)
    shift = round((CITIES[dst][3] - CITIES[src][3]) * 60)  # the UTC offsets' difference, in minutes
    minutes = int(m.group(1)) * 60 + int(m.group(2)) + shift
    day_offset, minutes = divmod(minutes, 24 * 60)  # the day before (-1), the same (0) or the next (1)
    return {
        "time": f"{int(m.group(1)):02d}:{m.group(2)}",
        "from_city": src,
        "to_city": dst,
        "converted_time": f"{minutes // 60:02d}:{minutes % 60:02d}",
        "day_offset": day_offset,
    }


# ----------------------------------------------------------------------------- arithmetic
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _arith(node):
    """Evaluate an arithmetic AST (numbers, + - * / // % **, parentheses) without eval."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_arith(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _arith(node.left), _arith(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
            raise ValueError("exponent too large")  # 9**9**9 would run for hours
        return _BINARY[type(node.op)](left, right)
    raise ValueError(f"unsupported expression element: {ast.unparse(node)!r}")


def calculate(expression: Annotated[str, 'The expression, e.g. "(12 + 30) * 1.5".']) -> dict:
    """Evaluate an arithmetic expression with + - * / // % ** and parentheses."""
    if not isinstance(expression, str) or len(expression) > 500:
        raise ValueError("expression must be a string of at most 500 characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"invalid expression {expression!r}") from None
    value = _arith(tree.body)
    return {"expression": expression, "result": value if isinstance(value, int) else _sig(value, 10)}


def calculate_percentage(
    part: Annotated[float, "The part."], whole: Annotated[float, "The whole (not zero)."]
) -> dict:
    """What percentage one number is of another."""
    if whole == 0:
        raise ValueError("whole must not be zero")
    return {"part": part, "whole": whole, "percentage": round(100 * part / whole, 2)}


def calculate_average(numbers: Annotated[list[float], "The numbers, e.g. [3, 5, 10]."]) -> dict:
    """Arithmetic mean of a list of numbers."""
    if not numbers or not all(type(x) in (int, float) for x in numbers):
        raise ValueError("numbers must be a non-empty list of numbers")
    return {"count": len(numbers), "average": _sig(sum(numbers) / len(numbers))}


# ----------------------------------------------------------------------------- text and code
def text_reverse(text: Annotated[str, "The text to reverse."]) -> str:
    """Reverse a piece of text character by character."""
    return text[::-1]


def text_uppercase(text: Annotated[str, "The text to convert."]) -> str:
    """Convert text to upper case."""
    return text.upper()


def text_word_count(text: Annotated[str, "The text to count."]) -> dict:
    """Count the words in a piece of text."""
    return {"words": len(text.split())}


def text_count_char(
    text: Annotated[str, "The text to search."], char: Annotated[str, "A single character."]
) -> dict:
    """Count how often a character occurs in a text (case-insensitive)."""
    if len(char) != 1:
        raise ValueError(f"char must be a single character, got {char!r}")
    return {"char": char, "count": text.lower().count(char.lower())}


def run_python(code: Annotated[str, "Python source code."]) -> str:
    """Run a short Python program and return what it prints (and the value of a last bare expression)."""
    # This executes model-written code, so it only ever runs inside a sandbox child process
    # (tl.sandbox sets the flag there after applying its limits); anywhere else it refuses.
    from tl import sandbox

    if not sandbox.IN_CHILD:
        raise RuntimeError("run_python only runs inside tl.sandbox.Sandbox")
    tree = ast.parse(code, "<run_python>", "exec")
    last = None  # a last bare expression, evaluated apart so that its value can be printed
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body.pop()
    scope = {"__name__": "__main__"}
    out = sandbox.CappedStringIO(MAX_PRINTED_CHARS)
    with redirect_stdout(out):
        exec(compile(tree, "<run_python>", "exec"), scope)  # noqa: S102 - contained, see above
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<run_python>", "eval"), scope)  # noqa: S307
            if value is not None:
                print(repr(value))
    return out.getvalue().rstrip("\n")


FUNCTIONS = [  # the registry's order, so every schema list built from it is fixed
    get_weather_current,
    get_weather_forecast,
    get_weekday,
    date_add_days,
    date_diff_days,
    get_country_capital,
    get_country_population,
    get_country_currency,
    get_city_country,
    get_city_distance,
    convert_currency,
    get_exchange_rate,
    convert_units,
    convert_timezone,
    calculate,
    calculate_percentage,
    calculate_average,
    text_reverse,
    text_uppercase,
    text_word_count,
    text_count_char,
    run_python,
]
