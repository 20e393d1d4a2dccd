"""Stateful environments: state capture, the verifier, the reward, the integrity checks,
each rejection reason, and the runtime interface (EnvSession dispatch, astra envs play)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest

from astra.envs.state import StateError, capture, diff, diff_summary, restore
from astra.types import CallInfo, Task, ToolServer

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------
# Fixture tool classes (targets ``tests.test_stateful:Notes`` ...)
# ---------------------------------------------------------------------------------


class Notes:
    """A small notebook of notes with ids, titles and a done flag."""

    def __init__(self) -> None:
        self._notes = [{"note_id": "N-1", "title": "groceries", "body": "milk and eggs", "done": False},
                       {"note_id": "N-2", "title": "taxes", "body": "file the 2025 return", "done": False}]
        self._next = 3

    def _find(self, note_id: str) -> dict:
        for n in self._notes:
            if n["note_id"] == note_id:
                return n
        raise ValueError(f"no note {note_id!r}")

    def get_note(self, note_id: str) -> dict:
        """Get one note.

        Args:
            note_id: The note's id, like N-1.
        """
        return dict(self._find(note_id))

    def add_note(self, title: str, body: str) -> dict:
        """Add a note.

        Args:
            title: Its title.
            body: Its text.
        """
        note = {"note_id": f"N-{self._next}", "title": title, "body": body, "done": False}
        self._next += 1
        self._notes.append(note)
        return dict(note)

    def mark_done(self, note_id: str) -> dict:
        """Mark a note as done.

        Args:
            note_id: The note's id.
        """
        n = self._find(note_id)
        n["done"] = True
        return {"note_id": note_id, "done": True, "title": n["title"]}

    def delete_note(self, note_id: str) -> dict:
        """Delete a note.

        Args:
            note_id: The note's id.
        """
        n = self._find(note_id)
        self._notes.remove(n)
        return {"deleted": note_id, "title": n["title"]}


class Clock(Notes):
    """Notes that stamp the time of every change (not deterministic)."""

    def add_note(self, title: str, body: str) -> dict:
        """Add a note.

        Args:
            title: Its title.
            body: Its text.
        """
        note = super().add_note(title, body)
        self._find(note["note_id"])["created_at"] = time.time()
        return note


class WithSocket(Notes):
    """Notes with an open socket in their state."""

    def __init__(self) -> None:
        super().__init__()
        self._conn = socket.socket()


class _Node:
    def __init__(self, name: str, parent: _Node | None = None) -> None:
        self.name = name
        self.parent = parent
        self.children: list[_Node] = []


class Tree(Notes):
    """Notes with a tree whose children point back to their parent."""

    def __init__(self) -> None:
        super().__init__()
        self._root = _Node("/")
        self._root.children.append(_Node("a", self._root))


_COUNTER = {"n": 0}


class Seeded(Notes):
    """Notes whose initial state differs from instance to instance."""

    def __init__(self) -> None:
        super().__init__()
        _COUNTER["n"] += 1
        self._serial = _COUNTER["n"]


class _Forgetful:
    """A value that pickles without its data."""

    def __init__(self) -> None:
        self.items = [1, 2]

    def __getstate__(self) -> dict:
        return {"items": []}

    def __deepcopy__(self, memo: dict) -> _Forgetful:
        other = _Forgetful()
        other.items = list(self.items)
        return other


class Leaky(Notes):
    """Notes with a part of the state that a restore does not bring back."""

    def __init__(self) -> None:
        super().__init__()
        self._cache = _Forgetful()


def server_of(cls: type, name: str | None = None) -> ToolServer:
    from astra.tools.pyfunc import server_from_target

    return server_from_target(f"tests.test_stateful:{cls.__qualname__}", name=name or cls.__name__.lower())


def plan(*steps: tuple[str, dict], derived: dict[int, dict] | None = None) -> dict:
    out = []
    for i, (tool, args) in enumerate(steps):
        out.append({"tool": tool, "user_args": args, "derived_args": (derived or {}).get(i, {})})
    return {"format": "astra.plan/v1", "steps": out, "mentions": []}


def task(server: ToolServer, query: str, p: dict, tid: str = "t1") -> Task:
    tools = [s["tool"] for s in p["steps"]] if isinstance(p.get("steps"), list) else []
    return Task(id=tid, server=server.name, query=query, target_tools=tools, arguments=p)


def make(t: Task, server: ToolServer | None, probe: bool = True):
    from astra.envsynth.stateful import make_environment

    return asyncio.run(make_environment(t, server, probe=probe))


@pytest.fixture(scope="module")
def notes() -> ToolServer:
    return server_of(Notes)


# ---------------------------------------------------------------------------------
# State capture
# ---------------------------------------------------------------------------------


def test_snapshot_is_canonical_and_records_are_keyed_by_id() -> None:
    n = Notes()
    snap = capture(n)
    assert list(snap.data) == ["_next", "_notes"]
    assert set(snap.data["_notes"]) == {"N-1", "N-2"}  # a list of records becomes a map by id
    assert snap.rows == 2
    n2 = Notes()
    n2._notes.reverse()  # order of a record list does not matter
    assert capture(n2).digest == snap.digest


def test_diff_created_changed_deleted_and_restore() -> None:
    n = Notes()
    before = capture(n)
    n.add_note("call mum", "sunday")
    n.mark_done("N-1")
    n.delete_note("N-2")
    changes = diff(before.data, capture(n).data)
    ops = sorted((c.op, c.collection, c.key or "/".join(c.path)) for c in changes)
    assert ops == [("created", "_notes", "N-3"), ("deleted", "_notes", "N-2"), ("set", "(root)", "_next"),
                   ("set", "_notes", "_notes/N-1/done")]
    assert diff_summary(changes)["_notes"] == {"created": 1, "changed": 1, "deleted": 1}
    restore(n, before)
    assert capture(n).digest == before.digest
    assert n.get_note("N-2")["title"] == "taxes"  # the methods work on the restored state


def test_unsnapshottable_states_are_named() -> None:
    obj = WithSocket()
    try:
        with pytest.raises(StateError) as e:
            capture(obj)
        assert e.value.reason == "socket"
    finally:
        obj._conn.close()


def test_back_references_are_written_as_paths() -> None:
    t = Tree()
    snap = capture(t)
    assert snap.data["_root"]["children"][0]["parent"] == {"$ref": "_root"}
    t._root.children[0].name = "b"
    (change,) = diff(snap.data, capture(t).data)
    assert change.op == "set" and change.path == ("_root", "children")  # a list without ids: one value
    restore(t, snap)
    assert t._root.children[0].name == "a" and t._root.children[0].parent is t._root


def test_non_json_and_unpicklable_values_are_named() -> None:
    n = Notes()
    n._ratio = float("nan")
    with pytest.raises(StateError) as e:
        capture(n)
    assert e.value.reason == "non_json"
    m = Notes()
    m._hook = lambda x: x
    with pytest.raises(StateError) as e:
        capture(m)
    assert e.value.reason == "callable"


# ---------------------------------------------------------------------------------
# The verifier and the reward
# ---------------------------------------------------------------------------------


def test_write_task_gold_one_nothing_zero_extra_side_effect_costs(notes: ToolServer) -> None:
    from astra.envs.runtime import EnvSession
    from astra.envs.stateful import StatefulSession

    t = task(notes, 'Add a note titled "call mum" saying "sunday", and mark note N-2 as done.',
             plan(("add_note", {"title": "call mum", "body": "sunday"}), ("mark_done", {"note_id": "N-2"})))
    out = make(t, notes)
    assert out.env is not None, out.detail
    env = out.env
    assert env.mode == "write" and env.verifier["answer"] == "N-3"  # the created id, asked for in the request
    assert "tell me the note ID" in env.instance.question
    assert out.probe["gold"] == 1.0 and max(out.probe["exploits"].values()) <= 0.05

    s = EnvSession(env, max_turns=8)  # dispatches on the kind
    assert isinstance(s, StatefulSession)

    def run(calls: list[tuple[str, dict]], answer: str | None) -> float:
        s.reset()
        for name, args in calls:
            s.step([{"id": name, "function": {"name": name, "arguments": json.dumps(args)}}])
        s.finish(answer)
        return s.reward().reward

    gold = [("add_note", {"title": "call mum", "body": "sunday"}), ("mark_done", {"note_id": "N-2"})]
    assert run(gold, "N-3") == 1.0
    assert run([], None) == 0.0
    assert run([], "N-3") == 0.0  # the fact was not returned by the agent's own calls
    assert run(gold, "N-3 or N-1") == 0.0  # several values
    # another path, same state: the order does not matter
    assert run(list(reversed(gold)), "N-3") == 1.0
    # an extra side effect costs reward: 3 required changes, 1 extra
    extra = run([*gold, ("mark_done", {"note_id": "N-1"})], "N-3")
    assert 0.0 < extra < 1.0 and extra == pytest.approx((3 - 1) / 3)
    info = s.reward()
    assert info.extra == 1 and info.matched == 3 and info.extra_changes[0]["path"][-1] == "done"
    # half the work, half the credit
    half = run([("mark_done", {"note_id": "N-2"}), ("get_note", {"note_id": "N-1"})], None)
    assert half == 0.0  # no answer: the gate is closed
    s.reset()
    assert s.snapshot().digest == env.initial_digest


def test_read_task_answer_and_no_writes(notes: ToolServer) -> None:
    from astra.envs.runtime import EnvSession

    t = task(notes, "Get note N-2. Tell me the title.", plan(("get_note", {"note_id": "N-2"})))
    out = make(t, notes)
    assert out.env is not None, out.detail
    env = out.env
    assert env.mode == "read" and env.verifier["answer"] == "taxes"
    s = EnvSession(env)
    s.reset()
    s.step([{"function": {"name": "get_note", "arguments": '{"note_id": "N-2"}'}}])
    s.finish("taxes")
    assert s.reward().reward == 1.0
    s.reset()
    s.step([{"function": {"name": "get_note", "arguments": '{"note_id": "N-2"}'}},
            {"function": {"name": "delete_note", "arguments": '{"note_id": "N-1"}'}}])
    s.finish("taxes")
    assert s.reward().reward == 0.0 and s.reward().extra == 1  # an unasked write on a read task


def test_hostile_calls_become_errors(notes: ToolServer) -> None:
    from astra.envs.runtime import EnvSession

    out = make(task(notes, "Get note N-2. Tell me the title.", plan(("get_note", {"note_id": "N-2"}))), notes,
               probe=False)
    s = EnvSession(out.env)
    s.reset()
    msgs = s.step([{"function": {"name": "get_note", "arguments": '{"note_id": ' + "[" * 5000 + "]" * 5000 + "}"}},
                   {"function": {"name": "nope"}}, "junk", {"function": {"name": "get_note", "arguments": "{}"}},
                   {"function": {"name": "get_note", "arguments": '{"note_id": "N-9"}'}}])
    assert all(m["content"].startswith("Error:") for m in msgs)


# ---------------------------------------------------------------------------------
# Rejections
# ---------------------------------------------------------------------------------

Q_ADD = 'Add a note titled "x" saying "y".'
P_ADD = plan(("add_note", {"title": "x", "body": "y"}))


def _reason(t: Task, server: ToolServer | None, probe: bool = True) -> str | None:
    out = make(t, server, probe)
    assert out.env is None or out.reason is None
    return out.reason


def test_rejection_reasons_of_the_server(notes: ToolServer) -> None:
    assert _reason(task(notes, Q_ADD, P_ADD), None) == "unknown_server"
    doc = notes.model_copy(update={"call": CallInfo(kind="doc_only")})
    assert _reason(task(doc, Q_ADD, P_ADD), doc) == "doc_only"
    mcp = notes.model_copy(update={"call": CallInfo(kind="mcp_stdio", target="python3 server.py")})
    assert _reason(task(mcp, Q_ADD, P_ADD), mcp) == "mcp_no_reset"
    mod = notes.model_copy(update={"call": CallInfo(kind="python", target="json")})
    assert _reason(task(mod, Q_ADD, P_ADD), mod) == "stateless_server"
    bad = notes.model_copy(update={"call": CallInfo(kind="python", target="tests.test_stateful:NoSuchClass")})
    assert _reason(task(bad, Q_ADD, P_ADD), bad) == "import_failed"


@pytest.mark.parametrize(("cls", "reason"), [
    (WithSocket, "state_socket"), (Seeded, "nondeterministic_initial_state"),
    (Clock, "nondeterministic"), (Leaky, "reset_leaks")])
def test_rejection_reasons_of_the_state(cls: type, reason: str) -> None:
    server = server_of(cls)
    assert _reason(task(server, Q_ADD, P_ADD), server, probe=False) == reason


def test_rejection_reasons_of_the_task(notes: ToolServer) -> None:
    assert _reason(task(notes, Q_ADD, {"steps": "no"}), notes) == "no_plan"
    assert _reason(task(notes, "Mark N-7 as done.", plan(("mark_done", {"note_id": "N-7"}))), notes) == "plan_failed"
    # a read whose result holds several values, none asked for
    assert _reason(task(notes, "Get note N-1.", plan(("get_note", {"note_id": "N-1"}))), notes) == "no_answer_fact"
    # the asked value is already in the request
    assert _reason(task(notes, "Get note N-1 about groceries. Tell me the title.",
                        plan(("get_note", {"note_id": "N-1"}))), notes) == "fact_in_request"


def test_exploitable_environment_is_rejected(notes: ToolServer) -> None:
    # deleting every id the attacker sees is exactly this task: the environment pays a spray
    t = task(notes, "Delete note N-2. Tell me the title.", plan(("delete_note", {"note_id": "N-2"})))
    out = make(t, notes)
    assert out.reason == "exploitable" and "delete_everything" in out.detail


def test_narrow_closing() -> None:
    from astra.envsynth.stateful import narrow_closing

    assert narrow_closing("Get P-1. Tell me the category and the price.") == "Get P-1. Tell me the category."
    assert narrow_closing("Get P-1. Report back with the status.") == "Get P-1. Report back with the status."


# ---------------------------------------------------------------------------------
# A tool set this project did not write, the bundle, the CLI
# ---------------------------------------------------------------------------------


def test_foreign_class_bfcl_trading_bot() -> None:
    pytest.importorskip("bfcl_eval")
    from astra.tools.pyfunc import server_from_target

    server = server_from_target(f"{ROOT}/benchmarks/foreign_toolsets.py:TradingBot", name="trading_bot")
    t = task(server, "Place an order with order type Buy and symbol AAPL and price 210.65 and amount 10. "
                     "Report back with the order ID.",
             plan(("place_order", {"order_type": "Buy", "symbol": "AAPL", "price": 210.65, "amount": 10})))
    out = make(t, server)
    assert out.env is not None, f"{out.reason}: {out.detail}"
    assert out.env.mode == "write" and out.probe["gold"] == 1.0


def test_bundle_round_trip_and_play_cli(tmp_path: Path, notes: ToolServer) -> None:
    from typer.testing import CliRunner

    from astra.cli import app
    from astra.envs.bundle import load_environments
    from astra.io import write_jsonl

    t = task(notes, 'Add a note titled "call mum" saying "sunday".',
             plan(("add_note", {"title": "call mum", "body": "sunday"})))
    tasks_path, tools_path, out_dir = tmp_path / "tasks.jsonl", tmp_path / "tools.jsonl", tmp_path / "envs"
    write_jsonl(tasks_path, [t, task(notes, "Get note N-1.", plan(("get_note", {"note_id": "N-1"})), tid="t2")])
    write_jsonl(tools_path, [notes])
    r = CliRunner().invoke(app, ["envs", "stateful", "--tasks", str(tasks_path), "--tools", str(tools_path),
                                 "-o", str(out_dir)])
    assert r.exit_code == 0, r.output
    manifest = json.loads((out_dir / "index.manifest.json").read_text())
    assert manifest["kept"] == 1 and manifest["rejected"] == {"no_answer_fact": 1}
    envs = load_environments(out_dir)
    assert len(envs) == 1 and envs[0].kind == "stateful"  # type: ignore[attr-defined]
    r = CliRunner().invoke(app, ["envs", "verify", str(out_dir)])
    assert r.exit_code == 0, r.output
    path = out_dir / f"{envs[0].id}.json"
    r = CliRunner().invoke(app, ["envs", "play", str(path)],
                           input='add_note(title="call mum", body="sunday")\nanswer N-3\n')
    assert r.exit_code == 0, r.output
    assert "reward (f1) 1.0000" in r.output


def test_rl_style_rollout_through_the_session_factory(notes: ToolServer) -> None:
    from astra.train.rl import RLConfig, default_session_factory

    out = make(task(notes, "Get note N-2. Tell me the title.", plan(("get_note", {"note_id": "N-2"}))), notes,
               probe=False)
    factory = default_session_factory(RLConfig())
    s = factory(out.env, None, 0)
    messages, tools = s.reset()
    assert messages[-1]["content"].startswith("Get note N-2") and {t["function"]["name"] for t in tools} >= {
        "get_note", "add_note"}
    msgs = asyncio.run(s.astep([{"id": "c1", "function": {"name": "get_note", "arguments": '{"note_id": "N-2"}'}}]))
    assert "taxes" in msgs[0]["content"]
    s.finish("taxes")
    assert s.done and s.reward().reward == 1.0


async def test_mcp_serve_and_eval_episode(tmp_path: Path, notes: ToolServer) -> None:
    """`astra envs serve` (stdio) and `astra eval envs`' episode loop take a stateful environment."""
    import os
    import sys

    from astra.envs.bundle import write_environment
    from astra.envsynth.stateful import make_environment
    from astra.eval.envs import run_episode
    from astra.llm.types import ChatResponse, ToolCall
    from astra.tools.mcp_client import call_tool, open_session, result_payload

    out = await make_environment(task(notes, 'Add a note titled "call mum" saying "sunday".',
                                      plan(("add_note", {"title": "call mum", "body": "sunday"}))), notes, probe=False)
    env = out.env
    path = write_environment(env, tmp_path)
    here = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    target = f"{sys.executable} -m astra.cli envs serve {path}"
    async with open_session(CallInfo(kind="mcp_stdio", target=target, env=here), timeout=120) as session:
        bad = await call_tool(session, "add_note", {"title": "x"})
        assert bad.is_error and "TypeError" not in str(result_payload(bad))
        ok = await call_tool(session, "add_note", {"title": "call mum", "body": "sunday"})
        assert not ok.is_error and "N-3" in str(result_payload(ok))
        done = await call_tool(session, "submit_answer", {"answer": "N-3"})
        assert not done.is_error and done.structured_content["reward"] == 1.0

    class Scripted:
        """A scripted test double of the chat API: one call, then the answer."""

        def __init__(self) -> None:
            self.n = 0

        async def chat(self, messages, tools=None, **kw):
            self.n += 1
            if self.n == 1:
                return ChatResponse(content="", tool_calls=[ToolCall(
                    id="c1", name="add_note", arguments='{"title": "call mum", "body": "sunday"}')])
            return ChatResponse(content="N-3")

    r = await run_episode(env, Scripted(), max_turns=4)
    assert r.error is None and r.reward == 1.0 and r.success


def test_trl_environment_class_takes_a_stateful_environment(notes: ToolServer) -> None:
    from astra.envs.adapters import trl_environment_class

    out = make(task(notes, 'Add a note titled "call mum" saying "sunday".',
                    plan(("add_note", {"title": "call mum", "body": "sunday"}))), notes, probe=False)
    cls = trl_environment_class(out.env)
    e = cls()
    assert "tell me the note ID" in e.reset()
    assert "N-3" in e.add_note(title="call mum", body="sunday")
    e._finish("N-3")
    assert e.get_reward() == 1.0
    e.reset()  # a new episode starts from the initial state
    e._finish("N-3")
    assert e.get_reward() == 0.0
