"""The sandbox for LLM-written code (astra.sandbox): normal code works, and the escape suite —
every attempt is contained and reported.

Most escapes are tried twice: through the default configuration (all layers) and through a
pool whose Python-level audit hook is switched off, so that the kernel layers (namespaces,
Landlock, seccomp, uid, rlimits) are shown to hold on their own. Expectations that depend
on a layer look at the isolation report, so the suite stays meaningful on a machine with
fewer layers (where the report must then say what is missing)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest

from astra.sandbox import (
    CallStatementError,
    SandboxError,
    SandboxPool,
    call_function,
    parse_call_statement,
    run_call_statement,
    run_code,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(size=2) as p:
        yield p


@pytest.fixture(scope="module")
def kpool():
    """Kernel layers only: the audit hook is off."""
    with SandboxPool(size=1, use_audit_hook=False) as p:
        yield p


@pytest.fixture(scope="module")
def iso(pool):
    return pool.run_code("pass").isolation


def _blocked(r) -> bool:
    """The code failed with a permission-style error (or was refused by the audit hook)."""
    return (not r.ok and r.error is not None
            and any(k in r.error for k in ("PermissionError", "SandboxViolation", "OSError",
                                           "FileNotFoundError", "Read-only")))


# ---- normal code ---------------------------------------------------------------------------


TOOL = '''
import json, re, datetime, math, collections
from dataclasses import dataclass

_DB = {"oslo": {"temp_c": -3.5, "tags": ["snow", "wind"]}}

@dataclass
class Reading:
    city: str
    temp_c: float

def get_weather(city: str, date: str = "2025-03-02") -> dict:
    datetime.date.fromisoformat(date)
    key = re.sub(r"\\s+", " ", city).strip().lower()
    if key not in _DB:
        raise ValueError(f"unknown city: {city}")
    c = collections.Counter(_DB[key]["tags"])
    r = Reading(city, _DB[key]["temp_c"])
    print("looked up", key)
    return {"city": r.city, "date": date, "temp_c": r.temp_c, "abs": math.fabs(r.temp_c),
            "tags": sorted(c), "json": json.dumps({"ok": True})}
'''


def test_normal_code_and_stdlib(pool):
    code = ("import json, re, datetime, math, collections, itertools, functools, statistics, "
            "decimal, fractions, zoneinfo, string, textwrap, heapq, bisect, random, hashlib, "
            "uuid, csv, io, enum, typing, dataclasses, wave, sqlite3, email.utils, "
            "xml.etree.ElementTree, threading, tempfile\n"
            "from collections import namedtuple\n"
            "P = namedtuple('P', 'a b')\n"
            "print(json.dumps({'sum': math.fsum([0.1] * 10), 'p': P(1, 2)._asdict()}))\n"
            "tz = 'Europe/Oslo' if zoneinfo.available_timezones() else 'UTC'\n"
            "print(datetime.datetime(2025, 3, 2, tzinfo=zoneinfo.ZoneInfo(tz)).utcoffset())\n"
            "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
            "with tempfile.NamedTemporaryFile('w') as f: f.write('x')\n"
            "db = sqlite3.connect(':memory:'); print(db.execute('select 40 + 2').fetchone()[0])\n")
    r = pool.run_code(code)
    assert r.ok, (r.error, r.stderr)
    lines = r.stdout.splitlines()
    assert json.loads(lines[0]) == {"sum": 1.0, "p": {"a": 1, "b": 2}}
    assert lines[1] in ("1:00:00", "0:00:00") and lines[2:] == ["thread", "42"]
    if Path("/usr/share/zoneinfo/Europe/Oslo").exists():  # system tz data is readable inside
        assert lines[1] == "1:00:00"
    assert r.exit_code == 0 and r.killed_reason is None and not r.violations


def test_exit_codes_and_errors_of_scripts(pool):
    assert pool.run_code("import sys; sys.exit(0)").ok
    r = pool.run_code("import sys; print('bye'); sys.exit(3)")
    assert not r.ok and r.exit_code == 3 and r.error is None and r.stdout == "bye\n"
    r = pool.run_code("def f():\n    raise KeyError('nope')\nf()")
    assert not r.ok and r.exit_code == 1 and r.error == "KeyError: 'nope'"
    assert 'File "<sandbox>", line 2, in f' in r.stderr and "_worker.py" not in r.stderr


def test_call_function_returns_json(pool):
    r = pool.call_function(TOOL, "get_weather", {"city": " Oslo ", "date": "2025-03-02"})
    assert r.ok and r.outcome == "returned", r
    assert r.value["temp_c"] == -3.5 and r.value["tags"] == ["snow", "wind"]
    assert json.loads(r.value_json) == r.value
    assert "looked up oslo" in r.sandbox.stdout


def test_call_function_raising_is_a_normal_outcome(pool):
    r = pool.call_function(TOOL, "get_weather", {"city": "Atlantis"})
    assert not r.ok and r.outcome == "raised"
    assert r.error_type == "ValueError" and r.error_message == "unknown city: Atlantis"
    assert r.error_phase == "call" and "get_weather" in r.traceback
    assert r.sandbox.killed_reason is None and not r.violations
    bad = pool.call_function(TOOL, "get_weather", {"city": "Oslo", "date": "tomorrow"})
    assert bad.outcome == "raised" and bad.error_type == "ValueError"
    missing = pool.call_function(TOOL, "no_such_tool", {})
    assert missing.outcome == "raised" and missing.error_type == "NameError" and missing.error_phase == "load"
    syntax = pool.call_function("def f(:\n  pass", "f", {})
    assert syntax.outcome == "raised" and syntax.error_type == "SyntaxError" and syntax.error_phase == "load"
    wrong_args = pool.call_function(TOOL, "get_weather", {"town": "Oslo"})
    assert wrong_args.outcome == "raised" and wrong_args.error_type == "TypeError"


def test_non_json_return_values_are_coerced(pool):
    code = "import datetime\ndef f():\n    return {'d': datetime.date(2025, 3, 2), 't': (1, 2), 's': {3, 1}, 1: 'x'}\n"
    r = pool.call_function(code, "f")
    assert r.ok and r.value_coerced
    assert r.value == {"d": "2025-03-02", "t": [1, 2], "s": [1, 3], "1": "x"}


def test_module_level_api_and_fresh_process():
    r = run_code("print(6 * 7)", fresh=True)
    assert r.ok and r.stdout == "42\n" and r.isolation.zygote is False
    c = call_function("def add(a, b):\n    return a + b\n", "add", {"a": 2, "b": 3}, fresh=True)
    assert c.ok and c.value == 5
    d = call_function("def add(a, b):\n    return a + b\n", "add", {"a": 2, "b": 3})  # default pool
    assert d.ok and d.value == 5


def test_files_are_provided_in_the_working_directory(pool):
    r = pool.run_code("import json; print(json.load(open('data/cities.json'))['oslo'])",
                      files={"data/cities.json": '{"oslo": 709000}'})
    assert r.ok and r.stdout.strip() == "709000"
    r = pool.run_code("pass", files={"../escape.txt": "x"})
    assert not r.ok and "relative" in r.error


def test_run_call_statement(pool):
    r = run_call_statement(TOOL, 'get_weather(city="Oslo", date="2025-03-02")', pool=pool)
    assert r.ok and r.value["city"] == "Oslo"
    r = pool.run_call_statement(TOOL, "get_weather('Oslo')")
    assert r.ok and r.value["date"] == "2025-03-02"
    p = parse_call_statement("f(1, -2.5, None, True, [1, (2, 3)], {'a': {1, 2}}, key='v')  ")
    assert p.name == "f" and p.args[4] == [1, (2, 3)] and p.kwargs == {"key": "v"}


@pytest.mark.parametrize("stmt", [
    "get_weather(city=input())", "get_weather(city=CITY)", "os.system('ls')",
    "get_weather(city='a'); get_weather(city='b')", "x = get_weather(city='a')",
    "get_weather(*args)", "get_weather(**kw)", "1 + 1", "get_weather(city='a' + 'b')",
    "__import__('os').system('id')", "", "get_weather(city='a'", "lambda: 1",
    "get_weather(city=[x for x in range(3)])", "get_weather(city=f'{1}')",
])
def test_call_statement_rejects_anything_but_one_literal_call(stmt):
    with pytest.raises(CallStatementError):
        parse_call_statement(stmt)


async def test_async_pool_calls(pool):
    results = await asyncio.gather(*[
        pool.acall_function(TOOL, "get_weather", {"city": "Oslo"}) for _ in range(4)])
    assert all(r.ok for r in results)
    r = await pool.arun_call_statement(TOOL, "get_weather(city='Oslo')")
    assert r.ok


def test_isolation_report(iso):
    assert iso.process and iso.env_scrubbed and iso.audit_hook
    assert iso.rlimits.get("as_bytes") == 512 * 1024 * 1024
    # whatever is not applied must be said so
    for layer in ("netns", "mountns", "seccomp"):
        if not getattr(iso, layer):
            assert iso.degraded, f"{layer} missing but not reported as degraded"
    if not iso.landlock:
        assert any("landlock" in d for d in iso.degraded)


def test_environment_is_scrubbed(pool, monkeypatch):
    r = pool.run_code("import os, json; print(json.dumps(dict(os.environ)))")
    env = json.loads(r.stdout)
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "TZ", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE",
                        "PYTHONIOENCODING", "HOME", "TMPDIR"}
    assert "ASTRA_CACHE_DIR" in os.environ and "ASTRA_CACHE_DIR" not in env


# ---- escape suite: network ------------------------------------------------------------------


@pytest.fixture()
def listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.setblocking(False)
    yield srv, srv.getsockname()[1]
    srv.close()


def _nothing_received(srv) -> bool:
    try:
        conn, _ = srv.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


@pytest.mark.parametrize("which", ["pool", "kpool"])
def test_escape_network(which, listener, request):
    p = request.getfixturevalue(which)
    srv, port = listener
    code = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            f"s.sendall(b'stolen')\nprint('connected')")
    r = p.run_code(code, timeout=5)
    assert not r.ok and "connected" not in r.stdout and _blocked(r), r.error
    udp = p.run_code(f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                     f"s.sendto(b'x', ('127.0.0.1', {port}))", timeout=5)
    assert not udp.ok and _blocked(udp)
    dns = p.run_code("import socket; print(socket.gethostbyname('example.com'))", timeout=5)
    assert not dns.ok
    assert _nothing_received(srv)
    if which == "pool":
        assert any("socket" in v for v in r.violations)


def test_network_blocked_by_kernel_layers(kpool):
    iso = kpool.run_code("pass").isolation
    if not (iso.seccomp or iso.netns):
        pytest.skip("neither seccomp nor a network namespace on this machine")
    r = kpool.run_code("import socket; socket.socket(socket.AF_UNIX).close()")
    if iso.seccomp:
        assert not r.ok and "Operation not permitted" in r.error
    r = kpool.run_code("import urllib.request; urllib.request.urlopen('http://127.0.0.1:9', timeout=2)")
    assert not r.ok


# ---- escape suite: filesystem ---------------------------------------------------------------


@pytest.mark.parametrize("which", ["pool", "kpool"])
def test_escape_writes_outside_workdir(which, request):
    p = request.getfixturevalue(which)
    marker = f"astra-sbx-marker-{uuid.uuid4().hex}"
    targets = [Path("/tmp") / marker, REPO / marker, Path(os.path.expanduser("~")) / marker,
               REPO / "src" / "astra" / marker, Path("/etc") / marker]
    try:
        for t in targets:
            for code in (f"open({str(t)!r}, 'w').write('pwned')",
                         f"import os; os.close(os.open({str(t)!r}, os.O_WRONLY | os.O_CREAT, 0o644))",
                         f"import pathlib; pathlib.Path({str(t)!r}).write_text('pwned')",
                         f"import os; os.makedirs({str(t)!r} + '_dir')"):
                r = p.run_code(code)
                assert _blocked(r), (t, code, r.error)
        # relative escapes and replacing files that exist
        r = p.run_code(f"import os\nos.chdir('/')\nopen({str(REPO / marker)!r}.lstrip('/'), 'w').write('x')")
        assert _blocked(r)
        r = p.run_code(f"open({str(REPO / 'pyproject.toml')!r}, 'a').write('# pwned')")
        assert _blocked(r)
        r = p.run_code(f"import os; os.remove({str(REPO / 'pyproject.toml')!r})")
        assert _blocked(r)
        for t in targets:
            assert not t.exists() and not Path(str(t) + "_dir").exists(), t
        assert "pwned" not in (REPO / "pyproject.toml").read_text()
    finally:
        for t in targets:
            for q in (t, Path(str(t) + "_dir")):
                if q.is_dir():
                    q.rmdir()
                elif q.exists():
                    q.unlink()


@pytest.mark.parametrize("which", ["pool", "kpool"])
def test_escape_reads_of_private_files(which, request, tmp_path):
    p = request.getfixturevalue(which)
    iso = p.run_code("pass").isolation
    if not (iso.mountns or iso.landlock):
        pytest.skip("no mount namespace and no landlock: reads are only limited by file permissions")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    secret.chmod(0o644)
    for path in (secret, REPO / "pyproject.toml", Path(sys.prefix) / "pyvenv.cfg"):
        r = p.run_code(f"print(open({str(path)!r}).read())")
        assert not r.ok and "TOP-SECRET" not in r.stdout and "[project]" not in r.stdout, (path, r.stdout)
    r = p.run_code(f"import os; print(os.listdir({str(REPO)!r}))")
    assert not r.ok
    # the parent's process is invisible / unreadable
    r = p.run_code(f"print(open('/proc/{os.getpid()}/environ').read())")
    assert not r.ok


def test_working_directory_is_private_and_capped(pool):
    r = pool.run_code("import os; open('a.txt', 'w').write('x' * 1000); print(os.getcwd(), sorted(os.listdir('.')))")
    assert r.ok and "a.txt" in r.stdout
    big = pool.run_code("open('big.bin', 'wb').write(b'x' * (64 * 1024 * 1024))")
    assert not big.ok and ("File too large" in big.error or "No space" in big.error), big.error


# ---- escape suite: processes ------------------------------------------------------------------


SPAWNS = {
    "subprocess": "import subprocess; print(subprocess.run(['echo', 'spawned'], capture_output=True).stdout)",
    "os.system": "import os; print(os.system('echo spawned'))",
    "os.fork": "import os\npid = os.fork()\nprint('spawned', pid)",
    "os.exec": "import os; os.execv('/bin/echo', ['echo', 'spawned'])",
    "posix_spawn": "import os; os.posix_spawn('/bin/echo', ['echo', 'spawned'], {})",
    "multiprocessing": "import multiprocessing as mp\np = mp.Process(target=print, args=('spawned',)); p.start(); p.join()",
    "pty": "import pty; pty.spawn(['/bin/echo', 'spawned'])",
}


@pytest.mark.parametrize("which", ["pool", "kpool"])
@pytest.mark.parametrize("how", list(SPAWNS))
def test_escape_spawn_process(which, how, request):
    p = request.getfixturevalue(which)
    r = p.run_code(SPAWNS[how], timeout=5)
    assert "spawned" not in r.stdout, (how, r.stdout, r.error)
    if how == "os.system" and r.ok:  # libc's system() reports a failed spawn as status 127
        assert int(r.stdout) == 127 << 8
    else:
        assert not r.ok, (how, r.stdout)
    assert r.killed_reason in (None, "signal") and r.duration < 5


@pytest.mark.parametrize("which", ["pool", "kpool"])
def test_escape_fork_bomb_is_bounded(which, request):
    p = request.getfixturevalue(which)
    r = p.run_code("import os\nwhile True:\n    os.fork()", timeout=5)
    assert not r.ok and r.killed_reason is None and r.duration < 3, r
    threads = p.run_code(
        "import threading, time\nn = 0\ntry:\n    while True:\n"
        "        threading.Thread(target=time.sleep, args=(3,), daemon=True).start(); n += 1\n"
        "except RuntimeError as e:\n    print('limited at', n)\n", timeout=5)
    assert threads.ok and "limited at" in threads.stdout
    assert int(threads.stdout.split()[-1]) < 64
    assert p.run_code("print('host fine')").stdout == "host fine\n"


@pytest.mark.parametrize("which", ["pool", "kpool"])
def test_escape_kill_parent_and_signal_games(which, request):
    p = request.getfixturevalue(which)
    for code in ("import os; os.kill(os.getppid(), 9)", "import os; os.kill(1, 9)",
                 "import os, signal; os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
                 "import os; os.kill(-1, 9)"):
        r = p.run_code(code)
        assert not r.ok and _blocked(r), (code, r.error)
    # the caller and the pool's fork server survived
    assert p.run_code("print('alive')").stdout == "alive\n"
    # ignoring every catchable signal does not survive the timeout
    t0 = time.monotonic()
    r = p.run_code("import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGXCPU, signal.SIGALRM,"
                   " signal.SIGHUP):\n    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass", timeout=1)
    assert r.timed_out and r.killed_reason == "timeout" and time.monotonic() - t0 < 3
    # signals to itself are fine
    r = p.run_code("import os, signal\nsignal.signal(signal.SIGUSR1, lambda *a: print('usr1'))\n"
                   "os.kill(os.getpid(), signal.SIGUSR1)\nsignal.raise_signal(signal.SIGUSR1)")
    assert r.ok and r.stdout == "usr1\nusr1\n"
    r = p.run_code("import signal, time\nsignal.alarm(1)\ntime.sleep(5)", timeout=4)
    assert not r.ok and r.signal == "SIGALRM" and r.killed_reason == "signal"


def test_escape_ctypes(pool, kpool):
    for code in ("import ctypes; ctypes.CDLL(None)", "import ctypes; ctypes.string_at(0)",
                 "import _ctypes", "import sys; sys.modules['ctypes']"):
        r = pool.run_code(code)
        assert not r.ok and r.error, code
    r = pool.run_code("import ctypes")
    assert any("ctypes" in v for v in r.violations)
    # without the audit hook: native calls still hit the kernel layers
    r = kpool.run_code("import ctypes; ctypes.string_at(0)")
    assert not r.ok and r.signal == "SIGSEGV" and r.killed_reason == "signal"
    c = kpool.call_function("import ctypes\ndef f():\n    return ctypes.string_at(0)\n", "f")
    assert c.outcome == "crashed" and c.error_type == "Crashed" and "SIGSEGV" in c.error_message
    if kpool.run_code("pass").isolation.seccomp:
        r = kpool.run_code("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                           "print(libc.socket(2, 1, 0), libc.fork(), libc.getuid() != 0)")
        assert r.ok and r.stdout.split() == ["-1", "-1", "True"], r.stdout


# ---- escape suite: resources --------------------------------------------------------------------


@pytest.mark.parametrize("code", [
    "x = b'x' * 10**10",
    "l = []\nwhile True:\n    l.append(bytearray(10**6))",
    "import mmap; m = mmap.mmap(-1, 10**10)",
])
def test_escape_memory_bomb(pool, code):
    r = pool.run_code(code, memory_mb=256, timeout=10)
    assert not r.ok and r.killed_reason == "memory", (r.killed_reason, r.error, r.signal)
    assert r.duration < 8


def test_escape_memory_bomb_in_a_call(pool):
    r = pool.call_function("def f():\n    return 'x' * 10**10\n", "f", memory_mb=256)
    assert r.outcome == "limit" and r.error_type == "MemoryError" and r.sandbox.killed_reason == "memory"


def test_escape_infinite_loop(pool):
    t0 = time.monotonic()
    r = pool.run_code("while True:\n    pass", timeout=1)
    wall = time.monotonic() - t0
    assert r.timed_out and r.killed_reason == "timeout" and r.signal == "SIGKILL"
    assert 1.0 <= r.duration < 2.0 and wall < 2.5
    c = pool.call_function("import time\ndef f():\n    time.sleep(60)\n", "f", timeout=1)
    assert c.outcome == "limit" and c.error_type == "Timeout" and c.sandbox.timed_out


def test_cpu_limit(pool):
    r = pool.run_code("while True:\n    pass", timeout=10, cpu_seconds=1)
    assert not r.ok and r.killed_reason == "cpu" and not r.timed_out and r.signal == "SIGXCPU"


def test_escape_huge_output(pool):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = pool.run_code('print("x" * 10**8)', timeout=10)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert r.stdout_truncated and r.truncated and r.killed_reason == "output"
    assert len(r.stdout) == 1_000_000
    assert (after - before) < 50 * 1024  # KiB: the parent never held the 100 MB
    r = pool.run_code("import sys\nwhile True:\n    sys.stderr.write('e' * 1000)", max_output=5000)
    assert r.stderr_truncated and len(r.stderr) == 5000 and r.killed_reason == "output"
    c = pool.call_function("def f():\n    return 'y' * (20 * 1024 * 1024)\n", "f")
    assert not c.ok and c.outcome in ("raised", "limit")


# ---- isolation between units ----------------------------------------------------------------------


def test_no_leak_between_units(pool):
    first = pool.run_code(
        "import json, builtins, os, sys\n"
        "json.dumps = lambda *a, **k: 'HACKED'\nbuiltins.LEAK = 42\nos.environ['LEAK'] = '1'\n"
        "sys.path.insert(0, '/tmp/sandbox')\nopen('state.txt', 'w').write('leak')\n"
        "open('evil.py', 'w').write('X = 1')\nprint(os.getpid())")
    assert first.ok
    second = pool.run_code(
        "import json, builtins, os, sys\n"
        "print(json.dumps({'a': 1}), hasattr(builtins, 'LEAK'), 'LEAK' in os.environ,\n"
        "      os.path.exists('state.txt'), os.listdir('.'), os.getpid())\n"
        "try:\n    import evil\nexcept ImportError:\n    print('no evil')")
    assert second.ok, second.error
    out = second.stdout.splitlines()
    assert out[0].startswith('{"a": 1} False False False []') and out[1] == "no evil"
    assert out[0].split()[-1] != first.stdout.strip()  # a different process
    code = "COUNT = []\ndef f():\n    COUNT.append(1)\n    return len(COUNT)\n"
    assert [pool.call_function(code, "f").value for _ in range(3)] == [1, 1, 1]


def test_units_cannot_see_each_other(pool):
    other = pool.run_code("import os, time; print(os.getpid(), flush=True); time.sleep(1)", timeout=5)
    assert other.ok
    r = pool.run_code("import os; print(sorted(p for p in os.listdir('/proc') if p.isdigit()))")
    assert r.ok
    pids = json.loads(r.stdout.replace("'", '"'))
    iso = r.isolation
    if iso.proc_hidepid:
        assert len(pids) == 1  # only itself


# ---- degraded configurations ------------------------------------------------------------------------


def test_degraded_mode_is_reported_and_writes_still_fail(caplog):
    marker = Path("/tmp") / f"astra-sbx-degraded-{uuid.uuid4().hex}"
    with caplog.at_level(logging.WARNING, logger="astra.sandbox"):
        with SandboxPool(size=0, use_namespaces=False) as p:
            r = p.run_code(f"open({str(marker)!r}, 'w').write('x')")
            ok = p.run_code("import json; print(json.dumps([1]))")
    try:
        assert not r.isolation.mountns and not r.isolation.netns
        assert any("namespaces" in d for d in r.isolation.degraded)
        assert any("degraded" in m for m in caplog.messages)
        assert _blocked(r) and not marker.exists()
        assert ok.ok and ok.stdout == "[1]\n"
    finally:
        if marker.exists():
            marker.unlink()


def test_strict_mode_refuses_degraded_isolation():
    with SandboxPool(size=0, use_seccomp=False, strict=True) as p:
        with pytest.raises(SandboxError, match="degraded"):
            p.run_code("print('never')")


def test_pool_survives_a_dead_fork_server_and_concurrent_callers():
    import threading

    with SandboxPool(size=2) as p:
        assert p.run_code("print(1)").ok
        z = p._zygote
        if z is not None:
            z.proc.kill()
            z.proc.wait(5)
        results = []

        def caller():
            for _ in range(5):
                results.append(p.call_function("def f(x):\n    return x * 2\n", "f", {"x": 21}))

        ts = [threading.Thread(target=caller) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert len(results) == 15 and all(r.ok and r.value == 42 for r in results), \
            [r.error for r in results if not r.ok]


@pytest.mark.parametrize("which", ["pool", "kpool"])
def test_escape_native_code_from_the_working_directory(which, request):
    """A copied extension module cannot be loaded from the (noexec) working directory."""
    p = request.getfixturevalue(which)
    iso = p.run_code("pass").isolation
    if not iso.workdir_tmpfs:
        pytest.skip("no private noexec working directory on this machine")
    code = ("import _json, os, shutil, importlib.util\n"
            "dst = shutil.copy(_json.__file__, os.path.basename(_json.__file__))\n"
            "spec = importlib.util.spec_from_file_location('_json', os.path.abspath(dst))\n"
            "importlib.util.module_from_spec(spec)\nprint('loaded')")
    r = p.run_code(code)
    assert not r.ok and "loaded" not in r.stdout
    assert "failed to map segment" in r.error or "PermissionError" in r.error, r.error
