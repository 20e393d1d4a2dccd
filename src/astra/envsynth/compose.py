"""The offline QA generator: question–answer instances with gold decompositions, composed
by rules from the bundled knowledge worlds (:mod:`astra.envsynth.worlds`), no LLM.

Scenario shapes (a *hop* is one sub-question, see :mod:`astra.envsynth.decompose`)
-------------------------------------------------------------------------------------
- **single_hop** (1 hop): one tool step on a named entity — an attribute or relation
  lookup ("Who directed the film "Paper Lions"?") or a search ("Which club is coached by
  Halvor Ek?", "Which station has the code LM-QUA?").
- **parallel_single_hop** (k + 1 hops, k = 2..3): k independent lookups of the same field
  of k named entities of one type, then one non-tool aggregation step (``max``/``min``:
  which entity has the larger/smaller value, ``sum``, ``diff`` = absolute difference,
  ``same`` = "yes"/"no", half of them built to be "yes" where the world allows; ``k = 3``
  only for max/min/sum).
- **multi_hop** (L hops, L = 2..5): a chain; step i+1 takes step i's answer (an entity
  name) as its argument. Steps are relation lookups or inverse-relation searches ("the
  club coached by X"), the last one any lookup or search; a chain may start at a named
  entity or with a search by a unique attribute value ("the course with code CL-112").
  a0 is the last step's answer; there is no aggregation step.
- **parallel_multi_hop** (sum of (l_i + 1) + 1 hops): k = 2..3 independent chains, each
  reaching an entity of the same type in l_i >= 0 steps (at least one l_i >= 1), the same
  field looked up at the end of each, then one aggregation step as above ("Which was born
  earlier, the director of A or the founder of B?").

Hop budgets (:class:`~astra.envsynth.decompose.HopBudget`): ``fixed``/``range`` pick, per
instance, a hop count in the budget that the scenario can have (single_hop: 1;
parallel_single_hop: 3-4; multi_hop: 2-5; parallel_multi_hop: 4-16); ``auto`` samples
per scenario from 1..5: single_hop 1, parallel_single_hop 3-4, multi_hop 2-5,
parallel_multi_hop 4-5. A scenario the budget excludes yields nothing (e.g. ``--hops 3``
gives no single_hop and no parallel_multi_hop).

Sub-tasks get ids ``s1..sn`` in (hop level, chain) order, so a dependency always names an
earlier id; the aggregation step (``needs_tool=False``) is last and nothing depends on
it. Instance ids are ``<domain>.<sh|psh|mh|pmh>.<sha1(question)[:10]>``: the same
question always gets the same id. Everything is deterministic given ``seed``.

``QAInstance.meta`` of a composed instance
------------------------------------------
::

    {
      "source": "offline", "world": "film", "seed": 0, "hop_budget": "auto", "hops": 5,
      "plan": {                                  # one entry per TOOL sub-task
        "s1": {"world": "film",                  # the knowledge world (load_world(world))
               "operation": "lookup",            # lookup | search
               "entity_type": "film",            # lookup: the type of the entity looked up
                                                 # search: the type of the entities searched
               "entity": "The Salt Orchard",     # the key the call takes: lookup -> the entity's
                                                 # name; search -> the value searched for (an
                                                 # entity name for a relation, else the formatted
                                                 # attribute value). For a step with arg_from it
                                                 # equals the sub_answer of that step.
               "attribute": "director",          # lookup: the field read; search: the field filtered on
               "arg_from": null,                 # the sub-task whose answer is ``entity``, or null
               "tool_intent": "get_director_of_film",
               "answer_type": "entity",          # str | int | float | date | entity (an entity name)
               "target_type": "person"},         # entity type of an ``entity`` answer, else null
        "s3": {..., "operation": "lookup", "entity_type": "person", "entity": "Ilse Marrow",
               "attribute": "birth_year", "arg_from": "s1", "tool_intent": "get_birth_year_of_person",
               "answer_type": "int", "target_type": null}
      },
      "aggregate": {                             # the non-tool step, or null (single/multi-hop)
        "sub_id": "s5", "op": "min",             # max | min | sum | diff | same
        "inputs": ["s3", "s4"],                  # the sub-tasks whose answers it combines
        "entities": ["Ilse Marrow", "Odalys Fenn"],  # the entity each input describes
        "entity_type": "person", "attribute": "birth_year",
        "answer_type": "entity"                  # max/min -> entity (the winner's name);
      },                                         # sum/diff -> int|float; same -> "yes"/"no"
      "shape": "chains 1+1"                      # informative
    }

Tool intents are ``get_<field>_of_<entity_type>`` (lookups) and
``find_<entity_type>_by_<field>`` (searches). Tool sub-tasks of one instance with the same
``tool_intent`` are the "same intent, different parameters" clusters that environment
merging combines into one tool. Sub-answers are rendered with
:func:`~astra.envsynth.worlds.format_value` (ISO dates, plain ints, floats without trailing
zeros). :func:`check_gold` recomputes every sub-answer from the plan and the world, and a0
from the sub-answers.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from astra.envsynth.decompose import (
    SCENARIOS,
    HopBudget,
    answers_match,
    check_decomposition,
    dependents,
    parse_number,
    parse_scenarios,
)
from astra.envsynth.worlds import AttributeSpec, RelationSpec, World, format_number, format_value, load_worlds
from astra.types import QAInstance, SubTask

MAX_CHAIN = 5  # tool steps in one chain (a producer has at most MAX_CHAIN - 1 moves)
ABBR = {"single_hop": "sh", "parallel_single_hop": "psh", "multi_hop": "mh", "parallel_multi_hop": "pmh"}
AUTO_HOPS: dict[str, list[int]] = {"single_hop": [1], "parallel_single_hop": [3, 4], "multi_hop": [2, 3, 4, 5],
                                   "parallel_multi_hop": [4, 5]}


# ---------------------------------------------------------------------------------
# Moves and chains
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """One atomic tool call: a lookup of ``field`` of entity ``arg`` (of ``entity_type``),
    or a search among ``entity_type`` for ``field == arg``."""

    op: str  # lookup | search
    entity_type: str
    field: str
    arg: str
    arg_is_entity: bool  # False only for a search by attribute value
    arg_type: str | None  # the entity type of ``arg`` (None for a literal value)
    result: Any  # raw value (attribute) or an entity name
    result_type: str | None  # entity type of an entity-valued result, else None

    @property
    def produces_entity(self) -> bool:
        return self.result_type is not None

    def intent(self) -> str:
        if self.op == "lookup":
            return f"get_{self.field}_of_{self.entity_type}"
        return f"find_{self.entity_type}_by_{self.field}"


@dataclass(frozen=True)
class Producer:
    """A way to reach an entity: a named entity (no moves) or a chain of entity-producing moves."""

    start: str | None  # the named start entity; None when moves[0] is a search by value
    start_type: str | None
    moves: tuple[Move, ...]

    @property
    def end(self) -> str:
        return self.moves[-1].result if self.moves else self.start  # type: ignore[return-value]

    @property
    def end_type(self) -> str:
        return self.moves[-1].result_type if self.moves else self.start_type  # type: ignore[return-value]

    def visited(self) -> set[str]:
        out = {m.result for m in self.moves}
        if self.start:
            out.add(self.start)
        return out


def _lookup(world: World, etype: str, name: str, field: str) -> Move | None:
    spec = world.field_spec(etype, field)
    value = world.get(etype, name, field)
    if value is None:
        return None
    rtype = spec.target if isinstance(spec, RelationSpec) else None
    return Move("lookup", etype, field, name, True, etype, value, rtype)


def _entity_moves(world: World, etype: str, name: str) -> list[Move]:
    """Entity-producing moves from an entity: its relations, and inverse-relation searches
    that find exactly one entity."""
    out = []
    for rname in world.types[etype].relations:
        m = _lookup(world, etype, name, rname)
        if m is not None:
            out.append(m)
    for t2, et2 in world.types.items():
        for rname, rel in et2.relations.items():
            if rel.target != etype or not rel.inverse_question:
                continue
            hits = world.search(t2, rname, name)
            if len(hits) == 1:
                out.append(Move("search", t2, rname, name, True, etype, hits[0], t2))
    return out


def _value_moves(world: World, etype: str, name: str) -> list[Move]:
    """Every final move from an entity: attribute lookups plus the entity moves."""
    out = [m for a in world.types[etype].attributes if (m := _lookup(world, etype, name, a)) is not None]
    return out + _entity_moves(world, etype, name)


def _attr_searches(world: World) -> list[Move]:
    out = []
    for etype, et in world.types.items():
        for aname, spec in et.attributes.items():
            if not spec.searchable:
                continue
            for name in world.names(etype):
                value = format_value(world.get(etype, name, aname))
                out.append(Move("search", etype, aname, value, False, None, name, etype))
    return out


def _producers(world: World) -> dict[tuple[str, int], list[Producer]]:
    return world.memo("compose.producers", lambda: _enumerate_producers(world))


def _enumerate_producers(world: World) -> dict[tuple[str, int], list[Producer]]:
    """All producers of up to MAX_CHAIN - 1 moves without revisiting an entity, by
    (end type, number of moves)."""
    out: dict[tuple[str, int], list[Producer]] = {}

    def add(p: Producer) -> None:
        out.setdefault((p.end_type, len(p.moves)), []).append(p)

    frontier: list[Producer] = []
    for etype in world.types:
        for name in world.names(etype):
            p = Producer(name, etype, ())
            add(p)
            frontier.append(p)
    for m in _attr_searches(world):
        p = Producer(None, None, (m,))
        add(p)
        frontier.append(p)
    for _ in range(MAX_CHAIN - 1):
        nxt = []
        for p in frontier:
            if len(p.moves) >= MAX_CHAIN - 1:
                continue
            seen = p.visited()
            for m in _entity_moves(world, p.end_type, p.end):
                if m.result in seen:
                    continue
                q = Producer(p.start, p.start_type, p.moves + (m,))
                add(q)
                nxt.append(q)
        frontier = nxt
    return out


# ---------------------------------------------------------------------------------
# Phrasing
# ---------------------------------------------------------------------------------


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def _fill(template: str, x: str) -> str:
    return template.replace("{x}", x)


def _arg_phrase(world: World, m: Move) -> str:
    return world.ref(m.arg_type, m.arg) if m.arg_is_entity and m.arg_type else m.arg


def _question(world: World, m: Move, x: str) -> str:
    """The question a move answers about ``x`` (a reference or a nested noun phrase)."""
    spec = world.field_spec(m.entity_type, m.field)
    if m.op == "lookup":
        t = spec.question or ("Who or what is the {label} of {x}?" if isinstance(spec, RelationSpec)
                              else "What is the {label} of {x}?").replace("{label}", spec.label)
        return _cap(_fill(t, x))
    if isinstance(spec, RelationSpec):
        t = spec.inverse_question or f"Which {m.entity_type} has {{x}} as its {spec.label}?"
    else:
        t = spec.search_question or f"Which {m.entity_type} has the {spec.label} {{x}}?"
    return _cap(_fill(t, x))


def _noun(world: World, m: Move, x: str) -> str:
    """A noun phrase for the entity a move produces from ``x``."""
    spec = world.field_spec(m.entity_type, m.field)
    if m.op == "lookup":
        return _fill(getattr(spec, "noun", None) or f"the {spec.label} of {{x}}", x)
    if isinstance(spec, RelationSpec):
        return _fill(spec.inverse_noun or f"the {m.entity_type} whose {spec.label} is {{x}}", x)
    return _fill(spec.search_noun or f"the {m.entity_type} with the {spec.label} {{x}}", x)


def _producer_noun(world: World, p: Producer) -> str:
    if p.start is not None:
        np = world.ref(p.start_type, p.start)  # type: ignore[arg-type]
        moves = p.moves
    else:
        np = _noun(world, p.moves[0], p.moves[0].arg)
        moves = p.moves[1:]
    for m in moves:
        np = _noun(world, m, np)
    return np


def _join(items: list[str], word: str) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {word} " + items[-1]


def _comparative(spec: AttributeSpec | RelationSpec, op: str) -> str:
    if isinstance(spec, AttributeSpec):
        word = spec.more if op == "max" else spec.less
        if word:
            return word
        if spec.type == "date":
            return f"has the {'later' if op == 'max' else 'earlier'} {spec.label}"
    return f"has the {'higher' if op == 'max' else 'lower'} {spec.label}"


# ---------------------------------------------------------------------------------
# Building instances
# ---------------------------------------------------------------------------------


@dataclass
class _Node:
    move: Move
    level: int
    chain: int
    arg_node: int | None  # index into nodes of the node whose answer is move.arg


def _fact(world: World, m: Move) -> str:
    if m.op == "lookup":
        return f"{m.arg} ({m.entity_type}): {m.field} = {format_value(m.result)}"
    return f"{m.result} ({m.entity_type}): {m.field} = {m.arg}"


def _build(world: World, scenario: str, question: str, chains: list[list[Move]], answer: str | None,
           agg: dict[str, Any] | None, *, seed: int, budget: HopBudget, shape: str) -> QAInstance:
    """Assemble the instance: sub-task ids in (level, chain) order, the plan, the facts."""
    nodes: list[_Node] = []
    last_of_chain: list[int] = []
    for ci, moves in enumerate(chains):
        prev = None
        for j, m in enumerate(moves):
            nodes.append(_Node(m, j + 1, ci, prev))
            prev = len(nodes) - 1
        last_of_chain.append(prev)  # type: ignore[arg-type]
    order = sorted(range(len(nodes)), key=lambda i: (nodes[i].level, nodes[i].chain))
    sid = {i: f"s{k + 1}" for k, i in enumerate(order)}
    level_count: dict[int, int] = {}
    for n in nodes:
        level_count[n.level] = level_count.get(n.level, 0) + 1
    subs: list[SubTask] = []
    plan: dict[str, dict[str, Any]] = {}
    for i in order:
        n = nodes[i]
        m = n.move
        dep = sid[n.arg_node] if n.arg_node is not None else None
        subs.append(SubTask(id=sid[i], hop_level=n.level, sub_question=_question(world, m, _arg_phrase(world, m)),
                            is_parallel=level_count[n.level] > 1, dependency=[dep] if dep else None,
                            sub_answer=format_value(m.result), needs_tool=True))
        plan[sid[i]] = {"world": world.domain, "operation": m.op, "entity_type": m.entity_type, "entity": m.arg,
                        "attribute": m.field, "arg_from": dep, "tool_intent": m.intent(),
                        "answer_type": world.value_type(m.entity_type, m.field) if m.op == "lookup" else "entity",
                        "target_type": m.result_type}
    aggregate = None
    if agg is not None:
        inputs = [sid[i] for i in last_of_chain]
        agg_id = f"s{len(nodes) + 1}"
        level = max(n.level for n in nodes) + 1
        answer = agg["answer"]
        subs.append(SubTask(id=agg_id, hop_level=level, sub_question=agg["sub_question"], is_parallel=False,
                            dependency=inputs, sub_answer=answer, needs_tool=False))
        aggregate = {"sub_id": agg_id, "op": agg["op"], "inputs": inputs, "entities": agg["entities"],
                     "entity_type": agg["entity_type"], "attribute": agg["attribute"],
                     "answer_type": agg["answer_type"]}
    assert answer is not None
    facts = list(dict.fromkeys(_fact(world, nodes[i].move) for i in order))
    digest = hashlib.sha1(question.encode("utf-8")).hexdigest()[:10]
    inst = QAInstance(
        id=f"{world.domain}.{ABBR[scenario]}.{digest}", domain=world.domain, scenario=scenario, question=question,
        answer=answer, sub_tasks=subs, knowledge="\n".join(facts),
        meta={"source": "offline", "world": world.domain, "seed": seed, "hop_budget": budget.spec,
              "hops": len(subs), "plan": plan, "aggregate": aggregate, "shape": shape},
    )
    return inst


def _agg_values(world: World, etype: str, field: str, names: list[str]) -> list[Any] | None:
    vals = [world.get(etype, n, field) for n in names]
    return None if any(v is None for v in vals) else vals


def _aggregate(world: World, etype: str, field: str, op: str, names: list[str], vals: list[Any],
               items: list[str]) -> dict[str, Any] | None:
    """The aggregation step over ``vals`` (one per entity ``names``); ``items`` are the
    noun phrases of the main question. None when the op does not apply (ties …)."""
    spec = world.field_spec(etype, field)
    shown = [format_value(v) for v in vals]
    label = spec.label
    if op in ("diff", "same") and len(vals) != 2:
        return None
    if op in ("max", "min"):
        if len(set(vals)) != len(vals):
            return None
        pick = max if op == "max" else min
        comp = _comparative(spec, op)
        q = f"Which {comp}, {_join(items, 'or')}?"
        sub = f"Which {comp}: " + _join([f"{n} ({label} {s})" for n, s in zip(names, shown, strict=True)], "or") + "?"
        answer, atype = names[vals.index(pick(vals))], "entity"
    elif op == "sum":
        q = f"What is the combined {label} of {_join(items, 'and')}?"
        sub = f"What is the sum of {_join(shown, 'and')}?"
        answer, atype = _number_answer(sum(vals), vals)
    elif op == "diff":
        q = f"What is the difference in {label} between {items[0]} and {items[1]}?"
        sub = f"What is the absolute difference between {shown[0]} and {shown[1]}?"
        answer, atype = _number_answer(abs(vals[0] - vals[1]), vals)
    elif op == "same":
        q = f"Do {items[0]} and {items[1]} have the same {label}?"
        sub = f"Are {shown[0]} and {shown[1]} the same?"
        answer, atype = ("yes" if vals[0] == vals[1] else "no"), "str"
    else:
        return None
    return {"op": op, "question": q, "sub_question": sub, "answer": answer, "answer_type": atype}


def _number_answer(value: Any, vals: list[Any]) -> tuple[str, str]:
    """A numeric answer computed from ``vals`` and its type (``int`` when every value is one)."""
    return format_number(round(value, 2)), "int" if all(isinstance(v, int) for v in vals) else "float"


def _balance_same(world: World, etype: str, field: str, names: list[str], vals: list[Any],
                  seed: int) -> tuple[list[str], list[Any]]:
    """Two random entities rarely share a value, so "Do A and B have the same …?" would be
    "no" almost always and a constant "no" would be paid. Half of these questions (decided
    by a hash-seeded coin, so no draw of the main generator changes) take instead a pair of
    entities that share the value, when the world has one."""
    coin = random.Random(f"astra.compose.same/{seed}/{world.domain}/{etype}/{field}/{'/'.join(names)}")
    if vals[0] == vals[1] or coin.random() >= 0.5:
        return names, vals
    every = world.names(etype)
    pairs = [(a, b) for i, a in enumerate(every) for b in every[i + 1:]
             if world.get(etype, a, field) is not None and world.get(etype, a, field) == world.get(etype, b, field)]
    if not pairs:
        return names, vals
    pair = list(coin.choice(pairs))
    coin.shuffle(pair)
    return pair, [world.get(etype, n, field) for n in pair]


def _round_trip(world: World, etype: str, field: str, vals: list[Any], seen: set[str]) -> bool:
    """Whether a final relation lookup lands on an entity the question already names or
    passes through (e.g. "the club that plays at X" -> its stadium is X)."""
    return isinstance(world.field_spec(etype, field), RelationSpec) and any(v in seen for v in vals)


def _agg_fields(world: World, etype: str, k: int) -> list[tuple[str, str]]:
    out = []
    et = world.types[etype]
    for fname in list(et.attributes) + list(et.relations):
        for op in et.field(fname).allowed_ops():
            if k == 3 and op not in ("max", "min", "sum"):
                continue
            out.append((fname, op))
    return out


def _single_hop(world: World, rng: random.Random, hops: int, seed: int, budget: HopBudget) -> QAInstance | None:
    if hops != 1:
        return None
    if rng.random() < 0.12:
        searches = _attr_searches(world)
        if searches:
            m = rng.choice(searches)
            return _build(world, "single_hop", _question(world, m, m.arg), [[m]], m.result, None,
                          seed=seed, budget=budget, shape="search")
    etype = rng.choice(sorted(world.types))
    name = rng.choice(world.names(etype))
    moves = _value_moves(world, etype, name)
    if not moves:
        return None
    m = rng.choice(moves)
    return _build(world, "single_hop", _question(world, m, _arg_phrase(world, m)), [[m]], format_value(m.result),
                  None, seed=seed, budget=budget, shape="lookup" if m.op == "lookup" else "search")


def _multi_hop(world: World, rng: random.Random, hops: int, seed: int, budget: HopBudget) -> QAInstance | None:
    if not 2 <= hops <= MAX_CHAIN:
        return None
    pool = [p for (_, n), ps in _producers(world).items() if n == hops - 1 for p in ps]
    if not pool:
        return None
    p = rng.choice(pool)
    seen = p.visited()
    finals = [m for m in _value_moves(world, p.end_type, p.end) if not (m.produces_entity and m.result in seen)]
    if not finals:
        return None
    m = rng.choice(finals)
    question = _question(world, m, _producer_noun(world, p))
    return _build(world, "multi_hop", question, [list(p.moves) + [m]], format_value(m.result), None,
                  seed=seed, budget=budget, shape=f"chain {hops}")


def _parallel_single_hop(world: World, rng: random.Random, hops: int, seed: int,
                         budget: HopBudget) -> QAInstance | None:
    k = hops - 1
    if k not in (2, 3):
        return None
    etype = rng.choice(sorted(world.types))
    names_all = world.names(etype)
    options = _agg_fields(world, etype, k)
    if len(names_all) < k or not options:
        return None
    field, op = rng.choice(options)
    names = rng.sample(names_all, k)
    vals = _agg_values(world, etype, field, names)
    if vals is None or _round_trip(world, etype, field, vals, set(names)):
        return None
    if op == "same":
        names, vals = _balance_same(world, etype, field, names, vals, seed)
    items = [world.ref(etype, n) for n in names]
    agg = _aggregate(world, etype, field, op, names, vals, items)
    if agg is None:
        return None
    chains = [[cast(Move, _lookup(world, etype, n, field))] for n in names]  # vals were read: none is None
    agg.update(entities=names, entity_type=etype, attribute=field)
    return _build(world, "parallel_single_hop", agg["question"], chains, None, agg, seed=seed, budget=budget,
                  shape=f"{k} lookups + {op}")


def _pmh_partitions(hops: int) -> list[tuple[int, ...]]:
    """Chain move counts (l_1 >= l_2 >= ...) with sum(l_i + 1) + 1 == hops, k = 2..3, some l_i >= 1."""
    out: list[tuple[int, ...]] = []
    top = MAX_CHAIN - 1
    for a in range(1, top + 1):
        for b in range(0, a + 1):
            if a + b + 2 + 1 == hops:
                out.append((a, b))
            for c in range(0, b + 1):
                if a + b + c + 3 + 1 == hops:
                    out.append((a, b, c))
    return out


def _parallel_multi_hop(world: World, rng: random.Random, hops: int, seed: int,
                        budget: HopBudget) -> QAInstance | None:
    parts = _pmh_partitions(hops)
    if not parts:
        return None
    lens = list(rng.choice(parts))
    rng.shuffle(lens)
    k = len(lens)
    prods = _producers(world)
    etype = rng.choice(sorted(world.types))
    options = _agg_fields(world, etype, k)
    if not options:
        return None
    field, op = rng.choice(options)
    chosen: list[Producer] = []
    seen: set[str] = set()
    for n in lens:
        pool = prods.get((etype, n), [])
        if not pool:
            return None
        p = rng.choice(pool)
        if p.visited() & seen:  # the chains must not share an entity
            return None
        seen |= p.visited()
        chosen.append(p)
    names = [p.end for p in chosen]
    vals = _agg_values(world, etype, field, names)
    if vals is None or _round_trip(world, etype, field, vals, seen):
        return None
    if op == "same" and vals[0] != vals[1]:  # as _balance_same, with B's whole chain re-picked
        coin = random.Random(f"astra.compose.same/{seed}/{world.domain}/{etype}/{field}/{'/'.join(names)}")
        if coin.random() < 0.5:
            twins = [p for p in prods.get((etype, lens[1]), []) if not (p.visited() & chosen[0].visited())
                     and world.get(etype, p.end, field) == vals[0]]
            if twins:
                twin = coin.choice(twins)
                alt_seen = chosen[0].visited() | twin.visited()
                alt_vals = [vals[0], world.get(etype, twin.end, field)]
                if not _round_trip(world, etype, field, alt_vals, alt_seen):
                    chosen, seen, vals = [chosen[0], twin], alt_seen, alt_vals
                    names = [p.end for p in chosen]
    items = [_producer_noun(world, p) for p in chosen]
    agg = _aggregate(world, etype, field, op, names, vals, items)
    if agg is None:
        return None
    chains = [list(p.moves) + [cast(Move, _lookup(world, etype, p.end, field))]  # vals were read: none is None
              for p in chosen]
    agg.update(entities=names, entity_type=etype, attribute=field)
    return _build(world, "parallel_multi_hop", agg["question"], chains, None, agg, seed=seed, budget=budget,
                  shape="chains " + "+".join(str(n + 1) for n in lens) + f" + {op}")


_BUILDERS = {"single_hop": _single_hop, "parallel_single_hop": _parallel_single_hop,
             "multi_hop": _multi_hop, "parallel_multi_hop": _parallel_multi_hop}


def feasible_hops(scenario: str, budget: HopBudget) -> list[int]:
    """The hop counts the composer can give ``scenario`` under ``budget``."""
    if budget.mode == "auto":
        return list(AUTO_HOPS[scenario])
    out = []
    for h in range(budget.lo, budget.hi + 1):
        ok = {"single_hop": h == 1, "parallel_single_hop": h in (3, 4), "multi_hop": 2 <= h <= MAX_CHAIN,
              "parallel_multi_hop": bool(_pmh_partitions(h))}[scenario]
        if ok:
            out.append(h)
    return out


def compose_world(world: World, scenario: str, *, n: int, hops: HopBudget | str = "auto", seed: int = 0,
                  attempts_per_instance: int = 60) -> list[QAInstance]:
    """Up to ``n`` distinct instances of one scenario type from one world (fewer when the
    world or the budget does not allow more)."""
    budget = HopBudget.parse(hops)
    choices = feasible_hops(scenario, budget)
    if not choices or n <= 0:
        return []
    rng = random.Random(f"astra.compose/{seed}/{world.domain}/{scenario}")
    out: dict[str, QAInstance] = {}
    for _ in range(n * attempts_per_instance):
        if len(out) >= n:
            break
        h = rng.choice(choices)
        inst = _BUILDERS[scenario](world, rng, h, seed, budget)
        if inst is None or inst.id in out:
            continue
        out[inst.id] = check_decomposition(inst, budget=budget, scenarios=[scenario])
    return list(out.values())


def compose(worlds: Iterable[World] | None = None, *, n: int = 8, scenarios: str | Iterable[str] | None = None,
            hops: HopBudget | str = "auto", seed: int = 0) -> list[QAInstance]:
    """Up to ``n`` instances per (world, scenario type) from ``worlds`` (default: every
    bundled world), deterministic given ``seed``. The list interleaves the (world,
    scenario) groups round-robin (the first instance of every group, then the second …),
    so any prefix of it mixes worlds and scenario types."""
    scen = parse_scenarios(scenarios)
    groups = [compose_world(w, s, n=n, hops=hops, seed=seed)
              for w in (list(worlds) if worlds is not None else load_worlds()) for s in scen]
    out: list[QAInstance] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


# ---------------------------------------------------------------------------------
# Gold checks
# ---------------------------------------------------------------------------------


def execute_plan_entry(world: World, entry: dict[str, Any]) -> str:
    """What the tool call of a plan entry returns, as an answer string. Raises KeyError /
    ValueError when the call has no unique answer."""
    etype, field, arg = entry["entity_type"], entry["attribute"], entry["entity"]
    if entry["operation"] == "lookup":
        value = world.get(etype, arg, field)
        if value is None:
            raise ValueError(f"{arg!r} has no {field}")
        return format_value(value)
    if entry["operation"] == "search":
        hits = [n for n in world.names(etype) if world.get(etype, n, field) is not None
                and format_value(world.get(etype, n, field)) == arg]
        if len(hits) != 1:
            raise ValueError(f"search {etype}.{field} == {arg!r} finds {len(hits)} entities")
        return hits[0]
    raise ValueError(f"unknown operation {entry['operation']!r}")


def apply_aggregate(agg: dict[str, Any], answers: dict[str, str]) -> str:
    """Recompute an aggregation step's answer from its inputs' answers."""
    vals_s = [answers[i] for i in agg["inputs"]]
    op = agg["op"]
    if op == "same":
        return "yes" if vals_s[0] == vals_s[1] else "no"
    nums = [parse_number(v) for v in vals_s]
    if op in ("max", "min"):
        keys: list[Any] = vals_s if any(x is None for x in nums) else nums  # ISO dates compare as strings
        best = (max if op == "max" else min)(range(len(keys)), key=lambda i: keys[i])
        return agg["entities"][best]
    if any(x is None for x in nums):
        raise ValueError(f"{op} over non-numbers {vals_s}")
    total = sum(nums) if op == "sum" else abs(nums[0] - nums[1])  # type: ignore[operator,arg-type]
    return format_number(round(total, 2))


def check_gold(inst: QAInstance, world: World | None = None) -> list[str]:
    """Problems of a composed instance's gold decomposition (empty = correct): every tool
    sub-answer recomputed from its plan entry against the world, every ``arg_from`` answer
    used as the next call's key, the aggregation recomputed, a0 = the final step's answer."""
    problems: list[str] = []
    plan: dict[str, dict[str, Any]] = inst.meta.get("plan") or {}
    if world is None:
        from astra.envsynth.worlds import load_world

        world = load_world(inst.meta.get("world", inst.domain))
    answers = {s.id: s.sub_answer for s in inst.sub_tasks}
    tool_ids = {s.id for s in inst.sub_tasks if s.needs_tool}
    if set(plan) != tool_ids:
        problems.append(f"plan covers {sorted(plan)}, tool sub-tasks are {sorted(tool_ids)}")
    by_id = {s.id: s for s in inst.sub_tasks}
    for sid, entry in plan.items():
        if sid not in by_id:
            continue
        src = entry.get("arg_from")
        if src is not None:
            if src not in answers or answers[src] != entry["entity"]:
                problems.append(f"{sid}: call key {entry['entity']!r} is not the answer of {src}")
            if by_id[sid].dependency != [src]:
                problems.append(f"{sid}: dependency {by_id[sid].dependency} != [{src}]")
        try:
            got = execute_plan_entry(world, entry)
        except (KeyError, ValueError) as e:
            problems.append(f"{sid}: {e}")
            continue
        if got != answers[sid]:
            problems.append(f"{sid}: world says {got!r}, gold says {answers[sid]!r}")
    agg = inst.meta.get("aggregate")
    sinks = [i for i, ds in dependents(inst.sub_tasks).items() if not ds]
    if len(sinks) != 1:
        problems.append(f"expected one final step, found {sinks}")
    final = agg["sub_id"] if agg else (sinks[0] if sinks else None)
    if agg:
        try:
            got = apply_aggregate(agg, answers)
        except (KeyError, ValueError, IndexError) as e:
            problems.append(f"aggregate: {e}")
        else:
            if got != answers.get(agg["sub_id"]):
                problems.append(f"aggregate gives {got!r}, gold says {answers.get(agg['sub_id'])!r}")
        if by_id.get(agg["sub_id"]) is not None and by_id[agg["sub_id"]].dependency != agg["inputs"]:
            problems.append("aggregate inputs differ from its dependencies")
    if final is not None and not answers_match(inst.answer, answers.get(final, "")):
        problems.append(f"a0 {inst.answer!r} != final sub-answer {answers.get(final)!r}")
    return problems


def counts_by_scenario(instances: Iterable[QAInstance]) -> dict[str, int]:
    out = {s: 0 for s in SCENARIOS}
    for i in instances:
        out[i.scenario] += 1
    return out


__all__ = [
    "AUTO_HOPS", "MAX_CHAIN", "Move", "Producer", "apply_aggregate", "check_gold", "compose", "compose_world",
    "counts_by_scenario", "execute_plan_entry", "feasible_hops",
]
