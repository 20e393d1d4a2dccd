"""The plan format: which concrete value every argument of every step of a task takes.

A task's :attr:`~astra.types.Task.arguments` holds its plan (format ``astra.plan/v1``)::

    {
      "format": "astra.plan/v1",
      "steps": [
        {"tool": "geocode_city", "user_args": {"city": "Tokyo"}, "derived_args": {}},
        {"tool": "get_current_weather", "user_args": {"units": "imperial"},
         "derived_args": {"latitude":  {"step": 0, "path": ["latitude"]},
                          "longitude": {"step": 0, "path": ["longitude"]}}}
      ],
      "mentions": ["Tokyo", "imperial"]
    }

- ``steps`` are the target tools in call order. The arguments of step ``i`` are its
  ``user_args`` (values the user states in the query) plus, for every entry of
  ``derived_args``, the value found in the *result* of the earlier step ``step`` by
  following ``path``: strings are object keys, integers list indices, and ``"*"`` maps the
  rest of the path over every item of a list (``{"step": 0, "path": ["*", "recipe_id"]}``
  is the list of all recipe ids of step 0's result). Parameters absent from both take the
  tool's defaults.
- ``mentions`` are the values the query states verbatim; an augmentation must keep each.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PLAN_FORMAT = "astra.plan/v1"


class DerivedRef(BaseModel):
    """Where a derived argument comes from: ``path`` into the result of step ``step``."""

    model_config = ConfigDict(extra="forbid")

    step: int
    path: list[str | int] = Field(default_factory=list)


class PlanStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str
    user_args: dict[str, Any] = Field(default_factory=dict)
    derived_args: dict[str, DerivedRef] = Field(default_factory=dict)


class Plan(BaseModel):
    """The ``Task.arguments`` payload (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    format: str = PLAN_FORMAT
    steps: list[PlanStep]
    mentions: list[Any] = Field(default_factory=list)

    @property
    def tools(self) -> list[str]:
        return [s.tool for s in self.steps]

    def user_values(self) -> dict[str, Any]:
        """Every user-supplied value by parameter name (first occurrence wins)."""
        out: dict[str, Any] = {}
        for s in self.steps:
            for k, v in s.user_args.items():
                out.setdefault(k, v)
        return out

    def signature(self) -> str:
        return json.dumps([[s.tool, s.user_args, {k: v.model_dump() for k, v in s.derived_args.items()}]
                           for s in self.steps], sort_keys=True, default=str)

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> Plan:
        """Read a plan from ``Task.arguments`` (raises ``ValueError`` when it is none)."""
        if not isinstance(arguments, dict) or "steps" not in arguments:
            raise ValueError("Task.arguments holds no plan (no 'steps')")
        return cls.model_validate(arguments)
