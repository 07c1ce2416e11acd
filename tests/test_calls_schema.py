"""Tool schemas: every accepted variant lands in the one normal form."""

import json
from typing import Annotated

import pytest

from tasks.toolalpaca import function_tools
from tasks.toolbox import tool_from_function
from tl.calls import Call, normalize_tool, normalize_tools

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name."},
            "unit": {"type": "string", "description": "'c' or 'f'."},
        },
        "required": ["city"],
    },
}


def test_openai_function_and_wrapper_are_the_same_tool():
    assert normalize_tool(WEATHER) == WEATHER
    assert normalize_tool({"type": "function", "function": WEATHER}) == WEATHER
    assert normalize_tool(json.dumps(WEATHER)) == WEATHER


def test_bfcl_dict_params_dotted_name_and_type_words():
    raw = {
        "name": "math.hypot",
        "description": "Norm.",
        "parameters": {
            "type": "dict",
            "properties": {
                "x": {"type": "float", "description": "x"},
                "pair": {"type": "tuple", "items": {"type": "integer"}, "description": "p"},
                "anything": {"type": "any", "description": "a"},
                "opts": {
                    "type": "dict",
                    "properties": {"k": {"type": "boolean", "description": "k"}},
                    "description": "o",
                    "default": {},
                },
                "mode": {"type": "string", "enum": ["a", "b"], "description": "m", "optional": True},
            },
            "required": ["x", "not_a_property"],
        },
    }
    tool = normalize_tool(raw)
    props = tool["parameters"]["properties"]
    assert tool["name"] == "math.hypot"
    assert tool["parameters"]["type"] == "object"
    assert tool["parameters"]["required"] == ["x"]  # a required key with no property is dropped
    assert [props[k]["type"] for k in props] == ["number", "array", "string", "object", "string"]
    assert props["pair"]["items"] == {"type": "integer"}
    assert props["opts"]["properties"]["k"]["type"] == "boolean"
    assert props["opts"]["default"] == {} and props["mode"]["enum"] == ["a", "b"]


def test_toolalpaca_function_description():
    text = (
        'Get public holidays\nParameters: {"year": "Required. integer. ", '
        '"countryCode": "Required. string. Two-character country code.", "offset": "number. utc offset."}\n'
        "Output: Public holidays.\n - Format: text/plain"
    )
    (tool,) = function_tools({"PublicHolidays": text})
    assert normalize_tool(tool) == {
        "name": "PublicHolidays",
        "description": "Get public holidays",
        "parameters": {
            "type": "object",
            "properties": {
                "year": {"type": "integer", "description": ""},
                "countryCode": {"type": "string", "description": "Two-character country code."},
                "offset": {"type": "number", "description": "utc offset."},
            },
            "required": ["year", "countryCode"],
        },
    }
    # Function_Description is a {name: text} dict; its "components" entry is not a tool.
    tools = normalize_tools(
        function_tools(
            {
                "PublicHolidays": text,
                "Version": "Get the version\nParameters: {}\nOutput: ok",
                "components": "The detailed output format ...",
            }
        )
    )
    assert [t["name"] for t in tools] == ["PublicHolidays", "Version"]
    assert tools[1]["parameters"] == {"type": "object", "properties": {}, "required": []}


def test_list_forms_and_json_text():
    tools = normalize_tools(json.dumps([WEATHER, {"type": "function", "function": WEATHER}]))
    assert tools == [WEATHER]  # the duplicate name is dropped
    assert normalize_tool({"name": "f"}) == {
        "name": "f",
        "description": "",
        "parameters": {"type": "object", "properties": {}, "required": []},
    }


def test_errors_say_what_was_expected_and_found():
    with pytest.raises(ValueError, match="non-empty string 'name'"):
        normalize_tool({"description": "no name"})
    with pytest.raises(ValueError, match=r"tools\[1\]: .*'parameters' must be \{type, properties"):
        normalize_tools([WEATHER, {"name": "g", "parameters": 3}])
    with pytest.raises(ValueError, match="must be a JSON object"):
        normalize_tool("Get something\nParameters: {}")
    with pytest.raises(ValueError, match="expected a 'Parameters: {...}' line"):
        function_tools({"f": "Get something"})
    with pytest.raises(ValueError, match="'arguments' is a string that is not JSON"):
        Call.from_dict({"name": "f", "arguments": "{oops"})


def test_call_from_dict_forms():
    assert Call.from_dict({"name": "f", "arguments": '{"a": 1}'}) == Call("f", {"a": 1})
    assert Call.from_dict({"type": "function", "function": {"name": "f", "arguments": {}}}) == Call("f", {})
    assert Call.from_dict({"name": "f", "parameters": {"b": 2}}).to_dict() == {
        "name": "f",
        "arguments": {"b": 2},
    }


def test_tool_from_function_reads_signature_hints_and_args():
    def get_weather(city: str, days: int, scale: float = 1.0, tags: list[str] = None) -> dict:
        """Current weather for a city.

        Args:
            city: City name, e.g. "Paris".
            days: How many days ahead.
        """

    tool = tool_from_function(get_weather)
    props = tool["parameters"]["properties"]
    assert tool["name"] == "get_weather" and tool["description"] == "Current weather for a city."
    assert tool["parameters"]["required"] == ["city", "days"]
    assert props["city"] == {"type": "string", "description": 'City name, e.g. "Paris".'}
    assert props["days"]["type"] == "integer" and props["scale"] == {
        "type": "number",
        "description": "",
        "default": 1.0,
    }
    assert props["tags"]["items"] == {"type": "string"}


def test_tool_from_function_reads_annotated_descriptions():
    def get_weekday(
        date: Annotated[str, "The date, YYYY-MM-DD."], n: Annotated[list[int], "Counts."] = None
    ) -> dict:
        """Day of the week of a date."""

    tool = tool_from_function(get_weekday)
    assert tool["description"] == "Day of the week of a date." and tool["parameters"]["required"] == ["date"]
    assert tool["parameters"]["properties"]["date"] == {
        "type": "string",
        "description": "The date, YYYY-MM-DD.",
    }
    assert tool["parameters"]["properties"]["n"]["items"] == {"type": "integer"}


def test_real_schemas_normalise(shared_data):
    n = 0
    for path in sorted((shared_data / "BFCL_v3").glob("BFCL_v3_*.json")):
        for line in path.read_text().splitlines():
            n += len(normalize_tools(json.loads(line)["function"]))
    for path in sorted((shared_data / "ToolEyes" / "Tool_Library").rglob("config_gpt4.json")):
        n += len(normalize_tools(path.read_text()))
    apis = json.loads((shared_data / "ToolAlpaca" / "eval_real.json").read_text())
    alpaca = [normalize_tools(function_tools(api["Function_Description"])) for api in apis]
    n += sum(map(len, alpaca))
    assert n > 2500
    ids = {t["name"]: t for tools in alpaca for t in tools}
    assert ids["CountryCountryInfo"]["parameters"]["required"] == ["countryCode"]
