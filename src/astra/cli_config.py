"""Command-line options derived from a config model: each knob is declared once.

A command that runs from a pydantic config (``RLConfig``, ``SFTRunConfig``, …) takes the
config itself as one parameter; :func:`takes_config` turns the model's fields into Typer
options — flag from the field name (or a :class:`Flag` in the field's ``Annotated``
metadata), help from the field's ``description``, default from the field's default,
choices from a ``Literal`` — and builds the config from what the user gave. Validation is
the model's own; an invalid value is one line naming the flag::

    class RunConfig(BaseModel):
        group_size: Annotated[int, Flag(short="-G")] = Field(4, ge=2, description="Rollouts per group.")

    @takes_config(RunConfig)
    def run(cfg: RunConfig, envs: Annotated[Path, typer.Option()]) -> None: ...

This is how TRL derives its command lines from its config dataclasses; ``--config FILE``
(:data:`astra.cli_common.ConfigOpt`) fills the same options from a file.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from astra.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Flag:
    """How a config field appears on the command line (all optional)."""

    name: str | None = None  # the long flag, default ``--field-name``
    short: str | None = None  # e.g. ``-G``
    help: str | None = None  # default: the field's description
    hidden: bool = False


def _flag(name: str, info: Any) -> Flag:
    for m in info.metadata:
        if isinstance(m, Flag):
            return m
    return Flag()


def flag_name(model: type[BaseModel], field: str) -> str:
    """The long flag of ``model.field`` (``--field-name`` unless a :class:`Flag` renames it)."""
    return _flag(field, model.model_fields[field]).name or "--" + field.replace("_", "-")


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else tp), True
    return tp, False


def _cli_type(tp: Any) -> tuple[Any, list[str] | None]:
    """A type Typer can parse, and the choices of a ``Literal`` (checked by the model)."""
    base, optional = _strip_optional(tp)
    choices = None
    if typing.get_origin(base) is Literal:
        choices = [str(a) for a in typing.get_args(base)]
        kinds = {type(a) for a in typing.get_args(base)}
        base = kinds.pop() if len(kinds) == 1 else str
    if typing.get_origin(base) is list and typing.get_args(base) and typing.get_args(base)[0] in (int, float, str, Path):
        return (base | None if optional else base), None  # a repeatable option
    if base not in (int, float, str, bool, Path) and not (isinstance(base, type) and issubclass(base, Enum)):
        base = str  # anything richer is given as text and parsed by the model
    return (base | None if optional else base), choices


def _option(model: type[BaseModel], name: str, help_override: str | None) -> tuple[Any, Any]:
    info = model.model_fields[name]
    flag = _flag(name, info)
    tp, choices = _cli_type(info.annotation)
    long = flag.name or "--" + name.replace("_", "-")
    text = help_override or flag.help or info.description or ""
    if choices:
        text = (text + " " if text else "") + "One of: " + ", ".join(choices) + "."
    decls = [long] if flag.short is None else [long, flag.short]
    if _strip_optional(tp)[0] is bool:  # --x/--no-x (unset: the field's default, None included)
        decls = [f"{long}/--no-{long.removeprefix('--')}"] + ([flag.short] if flag.short else [])
    default = info.get_default(call_default_factory=True)
    if default is PydanticUndefined:
        default = ...
    if isinstance(default, Enum):
        default = default.value
    return Annotated[tp, typer.Option(*decls, help=text, hidden=flag.hidden)], default


def config_error(model: type[BaseModel], e: ValidationError) -> ConfigError:
    """The first validation error as one line naming the flag."""
    err = e.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    where = flag_name(model, field) if field in model.model_fields else (field or model.__name__)
    return ConfigError(f"{where}: {err['msg']}")


def takes_config(model: type[BaseModel], *, param: str = "cfg", exclude: Iterable[str] = (),
                 help: Mapping[str, str] | None = None,
                 build: Callable[[dict[str, Any]], BaseModel] | None = None) -> Callable[[F], F]:
    """Give a command the fields of ``model`` as options: its parameter ``param`` (annotated
    with the model) becomes one option per field, in field order, except ``exclude``
    (those keep their defaults, or are set by the command). ``help`` replaces a field's help
    text; ``build`` (default ``model(**values)``) makes the config from the values."""
    skip = set(exclude)
    unknown = [f for f in (*skip, *(help or {})) if f not in model.model_fields]
    if unknown:
        raise ValueError(f"{model.__name__} has no field(s) {unknown}")
    fields = [f for f in model.model_fields if f not in skip]

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        if param not in sig.parameters:
            raise TypeError(f"{fn.__name__} has no parameter {param!r} to take {model.__name__}")
        taken = {p for p in sig.parameters if p != param}
        clash = [f for f in fields if f in taken]
        if clash:
            raise TypeError(f"{fn.__name__}: parameters {clash} clash with {model.__name__} fields")
        params: list[inspect.Parameter] = []
        for p in sig.parameters.values():
            if p.name != param:
                params.append(p)
                continue
            for f in fields:
                annotation, default = _option(model, f, (help or {}).get(f))
                params.append(inspect.Parameter(f, inspect.Parameter.KEYWORD_ONLY, default=default,
                                                annotation=annotation))

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {f: kwargs.pop(f) for f in fields if f in kwargs}
            values = {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}
            try:
                cfg = build(values) if build is not None else model(**values)
            except ValidationError as e:
                raise config_error(model, e) from None
            return fn(*args, **{param: cfg}, **kwargs)

        # all keyword-only (Typer passes keywords), so the command's order is kept as declared
        ordered = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
        wrapper.__signature__ = sig.replace(parameters=ordered)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in ordered if p.annotation is not p.empty}
        if sig.return_annotation is not sig.empty:
            wrapper.__annotations__["return"] = sig.return_annotation
        return wrapper  # type: ignore[return-value]

    return decorate


__all__ = ["Flag", "config_error", "flag_name", "takes_config"]
