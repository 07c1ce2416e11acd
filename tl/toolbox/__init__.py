"""The offline tool library: deterministic Python tools with schemas derived from their code.

    from tl.toolbox import TOOLS, schemas
    TOOLS["get_weather_current"].fn(city="Paris")   # the Python function
    TOOLS["get_weather_current"].schema             # its normal-form schema (tl.schema)
    schemas(["get_weekday", "calculate"])           # schemas to put in a prompt

A `Tool` is a function plus the schema `tl.schema.tool_from_function` derives from its
signature, type hints and docstring, so the schema a model sees and the Python signature the
sandbox calls cannot drift apart. Tools handed to `tl.sandbox.Sandbox` must be module-level
functions of an importable module: the sandbox's worker processes import them by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tl.schema import tool_from_function
from tl.toolbox.tools import FUNCTIONS


@dataclass(frozen=True)
class Tool:
    """A callable tool and its normal-form schema."""

    fn: Callable
    schema: dict

    @property
    def name(self) -> str:
        return self.schema["name"]

    @classmethod
    def from_function(cls, fn: Callable) -> "Tool":
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
