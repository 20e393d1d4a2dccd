"""Source text is parsed under one process-wide lock (CPython 3.11's AST constructor keeps
its recursion counter in shared state, so concurrent parses in threads can fail)."""
from __future__ import annotations

import pathlib
import re
import threading

from astra import pyast

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "astra"


def test_parse_waits_for_the_lock():
    done = threading.Event()

    def work():
        pyast.parse("f(x=1)", mode="eval")
        pyast.literal_eval("{'a': [1, 2]}")
        done.set()

    with pyast.LOCK:
        t = threading.Thread(target=work)
        t.start()
        assert not done.wait(0.3), "a parse ran while another thread held the lock"
    assert done.wait(10)
    t.join()


def test_lock_is_reentrant_and_results_match_ast():
    with pyast.LOCK:
        tree = pyast.parse("x = [1, {'b': (2, 3)}]")
    assert pyast.literal_eval(tree.body[0].value) == [1, {"b": (2, 3)}]


def test_threads_parsing_together_all_succeed():
    src = "\n".join(f"def f{i}(x):\n    return [{{'a': (x, [1, {{3: 4}}])}} for _ in range(3)]"
                    for i in range(50))
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(20):
                assert len(pyast.parse(src).body) == 50
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


def test_package_parses_source_only_through_pyast():
    """The parent process parses text only through astra.pyast (the sandbox worker runs in
    its own single-threaded process and is exempt)."""
    pat = re.compile(r"(?<![\w.])ast\.(parse|literal_eval)\(")
    offenders = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py")
                 if p.name not in {"pyast.py", "_worker.py"}
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pat.search(line)]
    assert offenders == []
