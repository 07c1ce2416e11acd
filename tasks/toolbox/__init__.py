"""The offline tool library: deterministic Python tools with schemas derived from their code.

    from tasks.toolbox import TOOLS, schemas
    TOOLS["get_weather_current"].fn(city="Paris")   # the Python function
    TOOLS["get_weather_current"].schema             # its normal-form schema (tl.calls)
    schemas(["get_weekday", "calculate"])           # schemas to put in a prompt

A schema is read off the function's signature (its `Annotated` type hints) and docstring, so the
schema a model sees and the signature the sandbox calls cannot drift apart. Tools handed to
`tl.sandbox.Sandbox` must be module-level functions of an importable module: its workers import them
by name.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass

from tasks.toolbox.tools import FUNCTIONS
from tl.calls import normalize_tool

_JSON = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def tool_from_function(fn: Callable) -> dict:
    """The normal-form schema of a toolbox function: parameters from its signature (no default:
    required) and type hints (str, int, float, bool, list[T], dict); the description is the
    docstring's text before `Args:`, each parameter's text its `Annotated[T, "text"]` hint, or
    else its `name: text` line after `Args:`."""
    hints = typing.get_type_hints(fn, include_extras=True)
    doc = inspect.getdoc(fn) or ""
    summary, _, args = doc.partition("Args:")
    # `name: text` lines after `Args:`
    texts = dict(line.strip().split(": ", 1) for line in args.splitlines() if ": " in line)
    props = {}
    required = []
    for name, p in inspect.signature(fn).parameters.items():
        hint = hints.get(name, str)
        if typing.get_origin(hint) is typing.Annotated:
            # Annotated[T, "text"]: the type, and the text (it wins over the docstring's)
            hint, texts[name] = typing.get_args(hint)[:2]
        prop = {
            "type": _JSON.get(typing.get_origin(hint) or hint, "string"),
            "description": texts.get(name, ""),
        }
        if typing.get_origin(hint) is list:
            prop["items"] = {"type": _JSON.get(typing.get_args(hint)[0], "string")}
        if p.default is p.empty:
            required.append(name)
        else:
            prop["default"] = p.default
        props[name] = prop
    return normalize_tool(
        {
            "name": fn.__name__,
            "description": summary.strip(),
            "parameters": {"type": "object", "properties": props, "required": required},
        }
    )


@dataclass(frozen=True)
class Tool:
    """A callable tool and its normal-form schema."""

    fn: Callable
    schema: dict

    @property
    def name(self) -> str:
        return self.schema["name"]

    @classmethod
    def from_function(cls, fn: Callable) -> Tool:
        return cls(fn, tool_from_function(fn))


TOOLS: dict[str, Tool] = {fn.__name__: Tool.from_function(fn) for fn in FUNCTIONS}


def get_tools(names=None) -> dict[str, Tool]:
    """The named tools (all of them by default), in the order given; KeyError lists unknown names."""
    if names is None:
        return dict(TOOLS)
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise KeyError(f"unknown toolbox tools {unknown}; available: {sorted(TOOLS)}")
    return {n: TOOLS[n] for n in names}


def schemas(names=None) -> list[dict]:
    """Normal-form schemas of the named tools (all by default), in the order given."""
    return [t.schema for t in get_tools(names).values()]
