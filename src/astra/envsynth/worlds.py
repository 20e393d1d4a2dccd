"""Knowledge worlds: small relational data sets from which QA instances are composed offline.

A world is one JSON file (bundled ones live in ``astra/data/worlds/<domain>.json``)::

    {
      "domain": "film",                       # the world's id (also the QA instances' domain)
      "title": "...", "description": "...",
      "types": {                              # entity types
        "film": {
          "description": "A feature film.",
          "ref": "the film \\"{name}\\"",      # how a question refers to one entity ({name})
          "attributes": {                     # typed values: str | int | float | date (ISO)
            "runtime_min": {"type": "int", "label": "running time in minutes",
                            "question": "How long does {x} run, in minutes?",   # optional
                            "more": "runs longer", "less": "is shorter",       # comparatives (optional)
                            "additive": true,         # a sum over entities makes sense
                            "ops": ["max", "min"],    # aggregations allowed (optional, see below)
                            "searchable": false}      # unique values: "which film has X = v?"
          },
          "relations": {                      # an edge to one entity of ``target`` (its name)
            "director": {"target": "person", "label": "director",
                         "question": "Who directed {x}?", "noun": "the director of {x}",
                         "inverse_question": "Which film did {x} direct?",   # enables search
                         "inverse_noun": "the film directed by {x}",
                         "optional": false}   # true: the value may be null
          }
        }
      },
      "entities": {"film": [{"name": "The Salt Orchard", "runtime_min": 118, "director": "Ilse Marrow"}]}
    }

Rules checked on load (:class:`World` raises ``ValueError`` naming the entity and field):
entity names are unique across the whole world (a name identifies one entity); every
entity has every attribute with a value of the declared type (dates are ISO
``YYYY-MM-DD``) and every relation (``null`` only where ``optional``) naming an entity of
the target type; templates contain their placeholder (``{x}``, ``{name}``); searchable
attributes have unique values. ``ops`` defaults: ``max``/``min``/``diff`` for int and
float, ``max``/``min`` for dates, ``same`` for strings and relations, plus ``sum`` where
``additive``.

Lookups: :meth:`World.get` (one attribute or relation of one entity), :meth:`World.search`
(entities of a type whose field equals a value), :meth:`World.entity`, :meth:`World.names`.
:func:`format_value` renders a value the way answers are written (ISO dates, ints without
separators, floats without trailing zeros).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from astra.errors import ConfigError, InputError

ValueType = Literal["str", "int", "float", "date"]
AggOp = Literal["max", "min", "sum", "diff", "same"]
AGG_OPS: tuple[str, ...] = ("max", "min", "sum", "diff", "same")


def _has(template: str | None, placeholder: str) -> bool:
    return template is None or placeholder in template


class AttributeSpec(BaseModel):
    """A typed attribute of an entity type."""

    model_config = ConfigDict(extra="forbid")

    type: ValueType
    label: str
    question: str | None = None  # "{x}" = a reference to the entity
    more: str | None = None  # "was born later": the comparative of the larger value
    less: str | None = None
    additive: bool = False
    searchable: bool = False
    search_question: str | None = None  # "{x}" = the value
    search_noun: str | None = None
    ops: list[AggOp] | None = None

    @model_validator(mode="after")
    def _templates(self) -> AttributeSpec:
        for name in ("question", "search_question", "search_noun"):
            if not _has(getattr(self, name), "{x}"):
                raise ValueError(f"template {name!r} must contain {{x}}")
        if self.additive and self.type not in ("int", "float"):
            raise ValueError("only int and float attributes can be additive")
        return self

    def allowed_ops(self) -> list[str]:
        if self.ops is not None:
            return list(self.ops)
        if self.type in ("int", "float"):
            return ["max", "min", "diff"] + (["sum"] if self.additive else [])
        if self.type == "date":
            return ["max", "min"]
        return ["same"]


class RelationSpec(BaseModel):
    """A relation from an entity to one entity of ``target`` (stored as its name)."""

    model_config = ConfigDict(extra="forbid")

    target: str
    label: str
    question: str | None = None
    noun: str | None = None
    inverse_question: str | None = None
    inverse_noun: str | None = None
    optional: bool = False
    ops: list[AggOp] | None = None

    @model_validator(mode="after")
    def _templates(self) -> RelationSpec:
        for name in ("question", "noun", "inverse_question", "inverse_noun"):
            if not _has(getattr(self, name), "{x}"):
                raise ValueError(f"template {name!r} must contain {{x}}")
        if self.ops is not None and set(self.ops) - {"same"}:
            raise ValueError("a relation only supports the 'same' aggregation")
        return self

    def allowed_ops(self) -> list[str]:
        return list(self.ops) if self.ops is not None else ["same"]


class EntityType(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    ref: str = "{name}"
    attributes: dict[str, AttributeSpec] = Field(default_factory=dict)
    relations: dict[str, RelationSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fields(self) -> EntityType:
        if "{name}" not in self.ref:
            raise ValueError("ref must contain {name}")
        both = set(self.attributes) & set(self.relations)
        if both:
            raise ValueError(f"fields are both attribute and relation: {sorted(both)}")
        if "name" in self.attributes or "name" in self.relations:
            raise ValueError("'name' is reserved for the entity's name")
        return self

    def field(self, name: str) -> AttributeSpec | RelationSpec:
        if name in self.attributes:
            return self.attributes[name]
        if name in self.relations:
            return self.relations[name]
        raise KeyError(name)


class Entity(BaseModel):
    """One entity: its type, name and field values (relations hold target names)."""

    model_config = ConfigDict(frozen=True)

    type: str
    name: str
    values: dict[str, Any]


class World(BaseModel):
    """A knowledge world (see the module docstring for the file format and the checks)."""

    model_config = ConfigDict(extra="forbid")

    domain: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = ""
    description: str = ""
    types: dict[str, EntityType]
    entities: dict[str, list[dict[str, Any]]]

    _index: dict[str, Entity] = PrivateAttr(default_factory=dict)
    _memo: dict[str, Any] = PrivateAttr(default_factory=dict)  # derived data (the composer's paths)

    @model_validator(mode="after")
    def _check(self) -> World:
        unknown = set(self.entities) - set(self.types)
        if unknown:
            raise ValueError(f"entities of undeclared types: {sorted(unknown)}")
        for tname, et in self.types.items():
            for rname, rel in et.relations.items():
                if rel.target not in self.types:
                    raise ValueError(f"{tname}.{rname}: unknown target type {rel.target!r}")
        index: dict[str, Entity] = {}
        for tname, rows in self.entities.items():
            for row in rows:
                name = row.get("name")
                if not isinstance(name, str) or not name.strip():
                    raise ValueError(f"an entity of type {tname!r} has no name")
                if name in index:
                    raise ValueError(f"entity name {name!r} is used twice (names are unique per world)")
                index[name] = Entity(type=tname, name=name, values={k: v for k, v in row.items() if k != "name"})
        for ent in index.values():
            et = self.types[ent.type]
            where = f"{ent.type} {ent.name!r}"
            extra = set(ent.values) - set(et.attributes) - set(et.relations)
            if extra:
                raise ValueError(f"{where}: undeclared fields {sorted(extra)}")
            for aname, spec in et.attributes.items():
                if aname not in ent.values or ent.values[aname] is None:
                    raise ValueError(f"{where}: missing attribute {aname!r}")
                _check_value(ent.values[aname], spec.type, f"{where}.{aname}")
            for rname, rel in et.relations.items():
                target = ent.values.get(rname)
                if target is None:
                    if not rel.optional:
                        raise ValueError(f"{where}: missing relation {rname!r}")
                    continue
                other = index.get(target) if isinstance(target, str) else None
                if other is None or other.type != rel.target:
                    raise ValueError(f"{where}.{rname}: {target!r} is not a {rel.target}")
                if other.name == ent.name:
                    raise ValueError(f"{where}.{rname}: an entity cannot relate to itself")
        for tname, et in self.types.items():
            for aname, spec in et.attributes.items():
                if spec.searchable:
                    vals = [e.values[aname] for e in index.values() if e.type == tname]
                    if len(set(vals)) != len(vals):
                        raise ValueError(f"{tname}.{aname} is searchable but its values are not unique")
        self._index = index
        return self

    # -- lookups -------------------------------------------------------------------
    def entity(self, name: str) -> Entity:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"world {self.domain!r} has no entity {name!r}") from None

    def names(self, entity_type: str) -> list[str]:
        return [e.name for e in self._index.values() if e.type == entity_type]

    def field_spec(self, entity_type: str, field: str) -> AttributeSpec | RelationSpec:
        return self.types[entity_type].field(field)

    def get(self, entity_type: str, name: str, field: str) -> Any:
        """The value of ``field`` of entity ``name`` (an attribute value or a target name;
        ``None`` for an absent optional relation). KeyError for unknown names/fields."""
        ent = self.entity(name)
        if ent.type != entity_type:
            raise KeyError(f"{name!r} is a {ent.type}, not a {entity_type}")
        self.types[entity_type].field(field)
        return ent.values.get(field)

    def search(self, entity_type: str, field: str, value: Any) -> list[str]:
        """Names of the entities of ``entity_type`` whose ``field`` equals ``value``."""
        self.types[entity_type].field(field)
        return [e.name for e in self._index.values()
                if e.type == entity_type and e.values.get(field) == value]

    def ref(self, entity_type: str, name: str) -> str:
        """How a question refers to an entity (the type's ``ref`` template)."""
        return self.types[entity_type].ref.replace("{name}", name)

    def value_type(self, entity_type: str, field: str) -> str:
        """``str|int|float|date`` for attributes, ``entity`` for relations."""
        spec = self.field_spec(entity_type, field)
        return spec.type if isinstance(spec, AttributeSpec) else "entity"

    def memo(self, key: str, build: Any) -> Any:
        """``build()`` once per world object (derived data such as the composer's paths)."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def size(self) -> int:
        return len(self._index)


def _check_value(value: Any, vtype: str, where: str) -> None:
    ok = {
        "str": lambda v: isinstance(v, str) and v.strip() != "",
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "date": _is_iso_date,
    }[vtype](value)
    if not ok:
        raise ValueError(f"{where}: {value!r} is not a valid {vtype}")


def _is_iso_date(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        return _dt.date.fromisoformat(v).isoformat() == v
    except ValueError:
        return False


def format_number(x: float | int) -> str:
    """Ints as digits; floats rounded to 2 decimals without trailing zeros."""
    if isinstance(x, bool):
        raise TypeError("not a number")
    if isinstance(x, int) or float(x).is_integer():
        return str(int(round(x)))
    s = f"{round(float(x), 2):.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def format_value(value: Any) -> str:
    """How an answer is written: names and strings as is, numbers via :func:`format_number`,
    dates stay ISO strings."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return format_number(value)
    return str(value)


# ---------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------


def _bundled_dir():
    return resources.files("astra.data").joinpath("worlds")


def bundled_domains() -> list[str]:
    """The domains of the bundled worlds, sorted."""
    return sorted(p.name[: -len(".json")] for p in _bundled_dir().iterdir() if p.name.endswith(".json"))


def parse_world(text: str, source: str = "<world>") -> World:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not JSON: {e}", path=source) from None
    try:
        return World.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        raise InputError(f"invalid knowledge world: {loc + ': ' if loc else ''}{err.get('msg')}", path=source) from None


@lru_cache(maxsize=64)
def _load_bundled(domain: str) -> World:
    p = _bundled_dir().joinpath(f"{domain}.json")
    return parse_world(p.read_text("utf-8"), source=f"astra/data/worlds/{domain}.json")


def load_world(domain_or_path: str | os.PathLike[str]) -> World:
    """A bundled world by domain (``"film"``) or a world JSON file by path."""
    s = str(domain_or_path)
    if s in bundled_domains():
        return _load_bundled(s)
    p = Path(s)
    if p.is_file():
        return parse_world(p.read_text("utf-8"), source=str(p))
    raise ConfigError(f"no knowledge world {s!r}: bundled worlds are {', '.join(bundled_domains())}, "
                      "or pass a world JSON file")


def load_worlds(domains: list[str] | None = None,
                extra: Sequence[str | os.PathLike[str]] | None = None) -> list[World]:
    """Bundled worlds (all, or those in ``domains``) plus worlds from ``extra`` files or
    directories (``*.json``); a later world replaces an earlier one of the same domain.
    ``domains`` also filters the extra worlds. Sorted by domain."""
    found: dict[str, World] = {d: _load_bundled(d) for d in bundled_domains()}
    for item in extra or []:
        p = Path(item)
        files = sorted(p.glob("*.json")) if p.is_dir() else [p]
        if not files or not all(f.is_file() for f in files):
            raise InputError("no knowledge world JSON found", path=str(p))
        for f in files:
            w = parse_world(f.read_text("utf-8"), source=str(f))
            found[w.domain] = w
    if domains:
        missing = [d for d in domains if d not in found]
        if missing:
            raise ConfigError(f"unknown knowledge world(s) {', '.join(missing)}; available: {', '.join(sorted(found))}")
        found = {d: found[d] for d in domains}
    return [found[d] for d in sorted(found)]


__all__ = [
    "AGG_OPS", "AttributeSpec", "Entity", "EntityType", "RelationSpec", "World", "bundled_domains",
    "format_number", "format_value", "load_world", "load_worlds", "parse_world",
]
