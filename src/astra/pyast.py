"""Thread-safe parsing of Python source into an AST.

CPython 3.11 keeps the recursion counter of its AST constructor in interpreter-wide
state. When two threads build an AST at the same time (one thread's construction can
hand the GIL over, for instance while the garbage collector runs a finalizer), the
counter of one is overwritten by the other and ``ast.parse`` fails with
``SystemError: AST constructor recursion depth mismatch``. astra parses untrusted code
both in the event loop thread (static checks of synthesized tools) and in worker threads
(call statements run through the sandbox), so every parse of source text in the package
goes through :func:`parse` and :func:`literal_eval`, which take one process-wide lock.
"""
from __future__ import annotations

import ast
import threading
from typing import Any, Literal, overload

#: held while source text is turned into an AST; re-entrant, so a finalizer that parses
#: on the same thread does not deadlock
LOCK = threading.RLock()


@overload
def parse(source: str, mode: Literal["exec"] = "exec") -> ast.Module: ...
@overload
def parse(source: str, mode: Literal["eval"]) -> ast.Expression: ...
@overload
def parse(source: str, mode: str) -> ast.AST: ...
def parse(source: str, mode: str = "exec") -> ast.AST:
    """``ast.parse(source, mode=mode)`` under :data:`LOCK`."""
    with LOCK:
        return ast.parse(source, mode=mode)


def literal_eval(node_or_source: str | ast.AST) -> Any:
    """``ast.literal_eval`` under :data:`LOCK` (a string argument is parsed first)."""
    with LOCK:
        return ast.literal_eval(node_or_source)
