"""Tool schemas: every accepted variant lands in the one normal form."""
import json
from typing import Literal, Optional

import pytest

from tl.schema import Call, normalize_tool, normalize_tools, tool_from_function

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string", "description": "City name."},
                                  "unit": {"type": "string", "description": "'c' or 'f'."}},
                   "required": ["city"]},
}


def test_openai_function_and_wrapper_are_the_same_tool():
    assert normalize_tool(WEATHER) == WEATHER
    assert normalize_tool({"type": "function", "function": WEATHER}) == WEATHER
    assert normalize_tool(json.dumps(WEATHER)) == WEATHER


def test_bfcl_dict_params_dotted_name_and_type_words():
    raw = {"name": "math.hypot", "description": "Norm.",
           "parameters": {"type": "dict", "properties": {
               "x": {"type": "float", "description": "x"},
               "pair": {"type": "tuple", "items": {"type": "integer"}, "description": "p"},
               "anything": {"type": "any", "description": "a"},
               "opts": {"type": "dict", "properties": {"k": {"type": "boolean", "description": "k"}},
                        "description": "o", "default": {}},
               "mode": {"type": "string", "enum": ["a", "b"], "description": "m", "optional": True}},
               "required": ["x", "not_a_property"]}}
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
    text = ('Get public holidays\nParameters: {"year": "Required. integer. ", '
            '"countryCode": "Required. string. Two-character country code.", "offset": "number. utc offset."}\n'
            'Output: Public holidays.\n - Format: text/plain')
    tool = normalize_tool(text, name="PublicHolidays")
    assert tool == {"name": "PublicHolidays", "description": "Get public holidays",
                    "parameters": {"type": "object", "properties": {
                        "year": {"type": "integer", "description": ""},
                        "countryCode": {"type": "string", "description": "Two-character country code."},
                        "offset": {"type": "number", "description": "utc offset."}},
                        "required": ["year", "countryCode"]}}
    # Function_Description is a {name: text} dict; its "components" entry is not a tool.
    tools = normalize_tools({"PublicHolidays": text, "Version": "Get the version\nParameters: {}\nOutput: ok",
                             "components": "The detailed output format ..."})
    assert [t["name"] for t in tools] == ["PublicHolidays", "Version"]
    assert tools[1]["parameters"] == {"type": "object", "properties": {}, "required": []}


def test_list_forms_json_text_and_toolbench_parameter_list():
    tools = normalize_tools(json.dumps([WEATHER, {"type": "function", "function": WEATHER}]))
    assert tools == [WEATHER]  # the duplicate name is dropped
    tool = normalize_tool({"name": "f", "parameters": [
        {"name": "q", "type": "str", "description": "query", "required": True},
        {"name": "n", "type": "int", "description": "count"}]})
    assert tool["parameters"] == {"type": "object", "required": ["q"], "properties": {
        "q": {"type": "string", "description": "query"}, "n": {"type": "integer", "description": "count"}}}
    assert tool["description"] == ""


def test_errors_say_what_was_expected_and_found():
    with pytest.raises(ValueError, match="non-empty string 'name'"):
        normalize_tool({"description": "no name"})
    with pytest.raises(ValueError, match=r"tools\[1\]: .*'parameters' must be an object"):
        normalize_tools([WEATHER, {"name": "g", "parameters": 3}])
    with pytest.raises(ValueError, match="needs name="):
        normalize_tool("Get something\nParameters: {}")
    with pytest.raises(ValueError, match="'arguments' is a string that is not JSON"):
        Call.from_dict({"name": "f", "arguments": "{oops"})


def test_call_from_dict_forms():
    assert Call.from_dict({"name": "f", "arguments": '{"a": 1}'}) == Call("f", {"a": 1})
    assert Call.from_dict({"type": "function", "function": {"name": "f", "arguments": {}}}) == Call("f", {})
    assert Call.from_dict({"name": "f", "parameters": {"b": 2}}).to_dict() == {"name": "f", "arguments": {"b": 2}}


def test_tool_from_function_uses_signature_hints_and_google_docstring():
    def get_weather(city: str, unit: Literal["c", "f"] = "c", days: Optional[int] = None,
                    tags: list[str] = None, *args, **kwargs) -> dict:
        """Current weather for a city.

        Args:
            city (str): City name.
            unit: 'c' or 'f'.
                Celsius by default.
            days: How many days ahead.

        Returns:
            A dict.
        """

    tool = tool_from_function(get_weather)
    props = tool["parameters"]["properties"]
    assert tool["name"] == "get_weather" and tool["description"] == "Current weather for a city."
    assert tool["parameters"]["required"] == ["city"]
    assert list(props) == ["city", "unit", "days", "tags"]
    assert props["city"] == {"type": "string", "description": "City name."}
    assert props["unit"] == {"type": "string", "description": "'c' or 'f'. Celsius by default.", "enum": ["c", "f"], "default": "c"}
    assert props["days"]["type"] == "integer" and props["tags"]["items"] == {"type": "string"}


def test_real_schemas_normalise(shared_data):
    n = 0
    for path in sorted((shared_data / "BFCL_v3").glob("BFCL_v3_*.json")):
        for line in path.read_text().splitlines():
            n += len(normalize_tools(json.loads(line)["function"]))
    for path in sorted((shared_data / "ToolEyes" / "Tool_Library").rglob("config_gpt4.json")):
        n += len(normalize_tools(path.read_text()))
    apis = json.loads((shared_data / "ToolAlpaca" / "eval_real.json").read_text())
    alpaca = [normalize_tools(api["Function_Description"]) for api in apis]
    n += sum(map(len, alpaca))
    assert n > 2500
    ids = {t["name"]: t for tools in alpaca for t in tools}
    assert ids["CountryCountryInfo"]["parameters"]["required"] == ["countryCode"]
