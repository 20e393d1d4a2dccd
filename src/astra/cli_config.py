"""Command-line options derived from an options object: each knob is declared once.

A command that takes a group of options — a pydantic config (``RLConfig``,
``SFTRunConfig``), or a dataclass (:class:`~astra.llm.options.LLMOptions`,
:class:`~astra.cli_common.RunnerOptions`) — takes the object itself as one parameter;
:func:`takes_options` turns the object's fields into Typer options, in that parameter's
place, and builds the object from what the user gave. Each field's option comes from the
field: the flag from its name (or a :class:`Flag` in its ``Annotated`` metadata, or in the
``flags`` given for a model that cannot carry CLI metadata itself), the help from its
``description`` (or the :class:`Flag`), the default from its default, choices from a
``Literal``. Validation is the model's own; an invalid value is one line naming the flag::

    class RunConfig(BaseModel):
        group_size: Annotated[int, Flag(short="-G")] = Field(4, ge=2, description="Rollouts per group.")

    @takes_config(RunConfig)
    def run(cfg: RunConfig, envs: Annotated[Path, typer.Option()]) -> None: ...

This is how TRL derives its command lines from its config dataclasses; ``--config FILE``
(:data:`astra.cli_common.ConfigOpt`) fills the same options from a file. The two halves
are :func:`option_parameters` (the fields as command parameters) and :func:`build_options`
(the object from a command's keyword arguments); :func:`takes_config`,
:func:`astra.cli_common.takes_llm_options` and :func:`astra.cli_common.takes_runner_options`
are :func:`takes_options` with their model.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
    """How a field appears on the command line (all optional)."""

    name: str | None = None  # the long flag (``--x`` or ``--x/--not-x``), default from ``param``
    short: str | None = None  # e.g. ``-G``
    help: str | None = None  # default: the field's description
    hidden: bool = False
    param: str | None = None  # the command's parameter name, default the field name
    envvar: str | None = None  # an environment variable that gives the value
    type: Any = None  # the type the command line parses (e.g. an Enum of the choices), default the field's
    negatable: bool = True  # a bool field gets ``--x/--no-x``; False: a plain ``--x`` switch


@dataclass(frozen=True)
class _Field:
    """What a field of a model says about its option."""

    name: str
    annotation: Any
    default: Any  # ``...``: required
    description: str | None
    flag: Flag

    @property
    def param(self) -> str:
        return self.flag.param or self.name

    @property
    def long(self) -> str:
        return self.flag.name or "--" + self.param.replace("_", "-")


def _flag_of(metadata: Iterable[Any]) -> Flag | None:
    return next((m for m in metadata if isinstance(m, Flag)), None)


def model_fields(model: type, flags: Mapping[str, Flag] | None = None) -> dict[str, _Field]:
    """The fields of a pydantic model or a dataclass, in order, with their :class:`Flag`
    (``flags[name]`` where given, else the one in the field's ``Annotated`` metadata)."""
    flags = flags or {}
    out: dict[str, _Field] = {}
    if isinstance(model, type) and issubclass(model, BaseModel):
        for name, info in model.model_fields.items():
            default = info.get_default(call_default_factory=True)
            flag = flags.get(name) or _flag_of(info.metadata) or Flag()
            out[name] = _Field(name, info.annotation, ... if default is PydanticUndefined else default,
                               info.description, flag)
    elif dataclasses.is_dataclass(model):
        hints = typing.get_type_hints(model, include_extras=True)
        for f in dataclasses.fields(model):
            tp, meta = hints[f.name], ()
            if typing.get_origin(tp) is Annotated:
                tp, *rest = typing.get_args(tp)
                meta = tuple(rest)
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = ...
            out[f.name] = _Field(f.name, tp, default, None, flags.get(f.name) or _flag_of(meta) or Flag())
    else:
        raise TypeError(f"{model!r} is neither a pydantic model nor a dataclass")
    unknown = [f for f in flags if f not in out]
    if unknown:
        raise ValueError(f"{model.__name__} has no field(s) {unknown}")
    return out


def flag_name(model: type, field: str, flags: Mapping[str, Flag] | None = None) -> str:
    """The long flag of ``model.field`` (``--field-name`` unless a :class:`Flag` renames it)."""
    return model_fields(model, flags)[field].long.split("/")[0]


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


def option_parameter(field: _Field, help: str | None = None) -> inspect.Parameter:
    """The command parameter (keyword-only, annotated with its ``typer.Option``) of one field;
    ``help`` replaces its help text."""
    flag = field.flag
    if flag.type is not None:
        tp, choices = (flag.type | None if _strip_optional(field.annotation)[1] else flag.type), None
    else:
        tp, choices = _cli_type(field.annotation)
    text = help or flag.help or field.description or ""
    if choices:
        text = (text + " " if text else "") + "One of: " + ", ".join(choices) + "."
    long = field.long
    if _strip_optional(tp)[0] is bool and flag.negatable and "/" not in long:
        long = f"{long}/--no-{long.removeprefix('--')}"  # unset: the field's default, None included
    decls = [long] if flag.short is None else [long, flag.short]
    default = field.default.value if isinstance(field.default, Enum) else field.default
    extra: dict[str, Any] = {"envvar": flag.envvar} if flag.envvar else {}
    option = typer.Option(*decls, help=text, hidden=flag.hidden, **extra)
    return inspect.Parameter(field.param, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[tp, option])


def option_parameters(model: type, fields: Iterable[str] | None = None, *, flags: Mapping[str, Flag] | None = None,
                      help: Mapping[str, str] | None = None) -> list[inspect.Parameter]:
    """The command parameters of ``model``'s ``fields`` (default: all, in field order)."""
    known = model_fields(model, flags)
    names = list(known if fields is None else fields)
    unknown = [f for f in (*names, *(help or {})) if f not in known]
    if unknown:
        raise ValueError(f"{model.__name__} has no field(s) {unknown}; known: {list(known)}")
    return [option_parameter(known[f], (help or {}).get(f)) for f in names]


def config_error(model: type, e: ValidationError, flags: Mapping[str, Flag] | None = None) -> ConfigError:
    """The first validation error as one line naming the flag."""
    err = e.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    known = model_fields(model, flags)
    where = known[field].long.split("/")[0] if field in known else (field or model.__name__)
    return ConfigError(f"{where}: {err['msg']}")


def build_options(model: type, fields: Iterable[str], kwargs: dict[str, Any], *,
                  flags: Mapping[str, Flag] | None = None) -> Any:
    """``model`` built from a command's keyword arguments: the parameters of ``fields`` are
    taken out of ``kwargs`` (an Enum becomes its value); fields not given keep their
    defaults. A validation error is a :class:`ConfigError` naming the flag."""
    known = model_fields(model, flags)
    values = {f: kwargs.pop(known[f].param) for f in fields if known[f].param in kwargs}
    values = {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}
    try:
        return model(**values)
    except ValidationError as e:
        raise config_error(model, e, flags) from None


def takes_options(model: type, *, param: str, fields: Iterable[str] | None = None, exclude: Iterable[str] = (),
                  flags: Mapping[str, Flag] | None = None, help: Mapping[str, str] | None = None,
                  around: Callable[[Any], contextlib.AbstractContextManager[Any]] | None = None
                  ) -> Callable[[F], F]:
    """Give a command the fields of ``model`` as options: its parameter ``param`` becomes one
    option per field of ``fields`` (default: every field, in field order) except ``exclude``
    (those keep their defaults, or are set by the command), in its place in ``--help``.
    ``flags`` gives the :class:`Flag` of fields that carry none; ``help`` replaces a field's
    help text. The command receives one ``model``, run inside ``around(obj)`` when given."""
    known = model_fields(model, flags)
    skip = set(exclude)
    unknown = [f for f in skip if f not in known]
    if unknown:
        raise ValueError(f"{model.__name__} has no field(s) {unknown}")
    chosen = [f for f in (known if fields is None else fields) if f not in skip]
    new = option_parameters(model, chosen, flags=flags, help=help)

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        if param not in sig.parameters:
            raise TypeError(f"{fn.__name__} has no parameter {param!r} to take {model.__name__}")
        clash = [p.name for p in new if p.name in sig.parameters and p.name != param]
        if clash:
            raise TypeError(f"{fn.__name__}: parameters {clash} clash with {model.__name__} fields")
        params: list[inspect.Parameter] = []
        for p in sig.parameters.values():
            # all keyword-only (Typer passes keywords), so the command's order is kept as declared
            params += new if p.name == param else [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            obj = build_options(model, chosen, kwargs, flags=flags)
            with around(obj) if around is not None else contextlib.nullcontext():
                return fn(*args, **{param: obj}, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not p.empty}
        if sig.return_annotation is not sig.empty:
            wrapper.__annotations__["return"] = sig.return_annotation
        return wrapper  # type: ignore[return-value]

    return decorate


def takes_config(model: type[BaseModel], *, param: str = "cfg", exclude: Iterable[str] = (),
                 help: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Give a command the fields of the config ``model`` as options (:func:`takes_options`):
    its parameter ``param`` (annotated with the model) becomes one option per field, in
    field order, except ``exclude``."""
    return takes_options(model, param=param, exclude=exclude, help=help)


__all__ = ["Flag", "build_options", "config_error", "flag_name", "model_fields", "option_parameter",
           "option_parameters", "takes_config", "takes_options"]
