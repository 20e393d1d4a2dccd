"""Execution plans: which concrete value every argument of every step of a task takes.

A task's :attr:`~astra.types.Task.arguments` holds its plan (format ``astra.plan/v1``,
:mod:`~astra.tasks.plan.format`). The package, by concern:

- :mod:`~astra.tasks.plan.format` -- the plan records (:class:`Plan`, :class:`PlanStep`,
  :class:`DerivedRef`);
- :mod:`~astra.tasks.plan.execute` -- running a plan on an executor (:func:`execute_plan`,
  :func:`follow_path`, :func:`error_result`, the Python and MCP executors): how the
  generator's dry run proves a task solvable and how a teacher solves it for real;
- :mod:`~astra.tasks.plan.schema` -- reading JSON schemas (types, enums, fields);
- :mod:`~astra.tasks.plan.resolve` -- argument resolution: which parameters are derived from
  earlier results and which the user supplies (:func:`resolve_steps`: the graph's
  resolution from ``Chain.checks["args"]`` when present, else data-flow matching);
- :mod:`~astra.tasks.plan.values` -- the value pool: concrete user values from schema enums /
  examples / defaults, examples in parameter descriptions, and for Python servers the
  implementation's seed data and the outputs of parameter-free tools (:class:`ValuePool`);
- :mod:`~astra.tasks.plan.search` -- plan search: sampling values for resolved steps and
  keeping distinct plans whose dry run succeeds (:func:`find_plans`).
"""

from astra.tasks.plan.execute import (
    Executor,
    ExecutorFactory,
    MCPExecutor,
    PlanError,
    call_step,
    error_result,
    execute_plan,
    executor_factory,
    follow_path,
    step_arguments,
)
from astra.tasks.plan.format import PLAN_FORMAT, DerivedRef, Plan, PlanStep
from astra.tasks.plan.resolve import StepArgs, is_identifier, resolve_steps
from astra.tasks.plan.schema import enum_values, json_types, schema_fields, value_fields
from astra.tasks.plan.search import FoundPlan, find_plans, sample_and_run, sample_plan
from astra.tasks.plan.values import ValuePool, description_examples, realistic_values

__all__ = [
    "PLAN_FORMAT", "DerivedRef", "Executor", "ExecutorFactory", "FoundPlan", "MCPExecutor", "Plan", "PlanError",
    "PlanStep", "StepArgs", "ValuePool", "call_step", "description_examples", "enum_values", "error_result",
    "execute_plan", "executor_factory", "find_plans", "follow_path", "is_identifier", "json_types",
    "realistic_values", "resolve_steps", "sample_and_run", "sample_plan", "schema_fields", "step_arguments",
    "value_fields",
]
