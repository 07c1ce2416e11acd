"""The offline toolbox: schemas derived from the code, hand-checked outputs, no eval, families
of names that share prefixes."""

import inspect

import pytest

from tasks.toolbox import TOOLS, get_tools, schemas

T = {name: tool.fn for name, tool in TOOLS.items()}


def test_schemas_read_off_the_code_are_the_expected_ones():
    """Two schemas written out by hand (what the model sees of a tool): a number, strings, a
    default that makes a parameter optional, descriptions from the Annotated hints."""
    assert TOOLS["get_weather_current"].schema == {
        "name": "get_weather_current",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": 'City name, e.g. "Paris".'},
                "unit": {
                    "type": "string",
                    "description": 'Temperature unit, "c" (default) or "f".',
                    "default": "c",
                },
            },
            "required": ["city"],
        },
    }
    assert TOOLS["convert_currency"].schema == {
        "name": "convert_currency",
        "description": "Convert an amount of money between currencies at the reference-day rate.",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "number", "description": "Amount to convert."},
                "from_currency": {
                    "type": "string",
                    "description": 'ISO code of the source currency, e.g. "USD".',
                },
                "to_currency": {
                    "type": "string",
                    "description": 'ISO code of the target currency, e.g. "EUR".',
                },
            },
            "required": ["amount", "from_currency", "to_currency"],
        },
    }


def test_at_least_20_tools_each_described_with_its_signature():
    assert len(TOOLS) >= 20
    for name, tool in TOOLS.items():
        assert tool.schema["name"] == name == tool.name
        params = inspect.signature(tool.fn).parameters
        assert list(tool.schema["parameters"]["properties"]) == list(params)
        assert tool.schema["parameters"]["required"] == [k for k, p in params.items() if p.default is p.empty]
        assert tool.schema["description"]
        assert all(p["description"] for p in tool.schema["parameters"]["properties"].values())


def test_prefix_sharing_families_exist():
    names = set(TOOLS)
    assert {"get_weather_current", "get_weather_forecast", "get_weekday"} <= names
    assert {"convert_currency", "convert_units", "convert_timezone"} <= names
    assert {"calculate", "calculate_percentage", "calculate_average"} <= names  # a name that prefixes others
    assert [s["name"] for s in schemas(["get_weekday", "calculate"])] == ["get_weekday", "calculate"]
    with pytest.raises(KeyError, match="get_wether"):
        get_tools(["get_wether"])


def test_hand_checked_outputs():
    assert T["get_weekday"]("2025-01-15") == {"date": "2025-01-15", "weekday": "Wednesday"}
    assert T["date_add_days"]("2024-02-27", 3)["result"] == "2024-03-01"  # leap year
    assert T["date_diff_days"]("2025-01-01", "2025-03-01")["days"] == 59
    assert T["convert_units"](5, "mi", "km")["result"] == 8.04672
    assert T["convert_units"](100, "c", "f")["result"] == 212
    assert T["convert_currency"](100, "usd", "EUR")["result"] == 92.0
    assert T["convert_timezone"]("22:30", "London", "Tokyo") == {
        "time": "22:30",
        "from_city": "London",
        "to_city": "Tokyo",
        "converted_time": "07:30",
        "day_offset": 1,
    }
    assert T["convert_timezone"]("14:30", "Paris", "Mumbai")["converted_time"] == "19:00"  # +4.5 h
    assert T["calculate"]("(12 + 30) * 1.5")["result"] == 63
    assert T["calculate"]("7 // 2 + 2 ** 10")["result"] == 1027
    assert T["calculate_percentage"](30, 200)["percentage"] == 15.0
    assert T["get_country_capital"]("usa") == {"country": "United States", "capital": "Washington"}
    assert 340 <= T["get_city_distance"]("Paris", "London")["distance_km"] <= 345
    assert T["text_reverse"]("stressed") == "desserts"
    assert T["text_count_char"]("Mississippi", "s")["count"] == 4


def test_weather_is_a_deterministic_function_of_city_and_day():
    a = T["get_weather_forecast"]("Oslo", "2025-01-20")
    assert a == T["get_weather_forecast"]("oslo", "2025-01-20")
    assert a["low_c"] < a["high_c"]
    assert (
        T["get_weather_current"]("Sydney")["temperature"] > T["get_weather_current"]("Oslo")["temperature"]
    )  # January
    f = T["get_weather_current"]("Paris", "f")
    assert f["unit"] == "F" and f["temperature"] == round(
        T["get_weather_current"]("Paris")["temperature"] * 9 / 5 + 32
    )


@pytest.mark.parametrize(
    "fn, args, message",
    [
        ("get_weather_current", ("Pariss",), "unknown city 'Pariss'"),
        (
            "get_weather_forecast",
            ("Paris", "2025-03-01"),
            "forecasts are available from 2025-01-15 to 2025-02-13",
        ),
        ("get_weekday", ("15/01/2025",), "date must be written YYYY-MM-DD"),
        ("convert_units", (1, "km", "kg"), "cannot convert km to kg"),
        ("convert_currency", (1, "euro", "USD"), "unknown currency code 'euro'"),
        ("calculate", ("__import__('os').system('true')",), "unsupported expression element"),
        ("calculate", ("9 ** 9 ** 9",), "exponent too large"),
        ("calculate_percentage", (1, 0), "whole must not be zero"),
    ],
)
def test_bad_values_raise_short_value_errors(fn, args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("*", r"\*")):
        T[fn](*args)
