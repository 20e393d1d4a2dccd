"""Parent side of the sandbox: starting workers (fresh interpreters or forks of the warm
fork server), feeding them one job, and collecting their capped output and exit status."""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astra.sandbox.models import PYTHON_FLAGS, SandboxConfig, SandboxError, worker_env

log = logging.getLogger("astra.sandbox")

WORKER_PATH = str(Path(__file__).with_name("_worker.py"))
_READ_CHUNK = 1 << 16


def _command(cfg: SandboxConfig, mode: str, wcfg: dict, *extra: str) -> list[str]:
    return [cfg.python, *PYTHON_FLAGS, WORKER_PATH, mode, json.dumps(wcfg), *extra]


def _close(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


class _ExitBox:
    """Exit status of a unit, filled by whoever reaps it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.status: int | None = None
        self.cpu: float | None = None
        self.maxrss_kb: int | None = None

        self._callbacks: list = []
        self._lock = threading.Lock()

    def set(self, status: int | None, cpu: float | None = None, maxrss: int | None = None) -> None:
        with self._lock:
            self.status, self.cpu, self.maxrss_kb = status, cpu, maxrss
            self.event.set()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            try:
                cb()
            except Exception:  # pragma: no cover - cleanup must not break the reader
                log.debug("exit callback failed", exc_info=True)

    def on_set(self, cb) -> None:
        with self._lock:
            if not self.event.is_set():
                self._callbacks.append(cb)
                return
        cb()


@dataclass
class WorkerProcess:
    """One unit process: runs exactly one job, then is discarded."""

    pid: int
    pidfd: int
    stdin: int
    stdout: int
    stderr: int
    result: int
    hostdir: str | None
    exit_box: _ExitBox
    zygote: bool
    popen: subprocess.Popen | None = None
    isolation: dict[str, Any] = field(default_factory=dict)
    leftover: bytes = b""
    used: bool = False
    _closed: bool = False

    def alive(self) -> bool:
        if self.exit_box.event.is_set():
            return False
        if self.pidfd >= 0:
            sel = selectors.DefaultSelector()
            try:
                sel.register(self.pidfd, selectors.EVENT_READ)
                return not sel.select(0)
            finally:
                sel.close()
        return True

    def kill(self) -> None:
        try:
            if self.pidfd >= 0:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            elif not self.exit_box.event.is_set():
                os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass

    def wait_exit(self, timeout: float) -> _ExitBox:
        if self.popen is not None and not self.exit_box.event.is_set():
            self._reap_fresh(timeout)
        self.exit_box.event.wait(timeout)
        return self.exit_box

    def _reap_fresh(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.exit_box.set(None)
                return
            if pid:
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                self.exit_box.set(status, ru.ru_utime + ru.ru_stime, ru.ru_maxrss)
                return
            if time.monotonic() >= deadline:
                return
            time.sleep(0.002)

    def close(self) -> None:
        """Release the unit: kill it if still running, close our fds, remove its host
        directory once it is gone. Does not wait for a forked unit to be reaped."""
        if self._closed:
            return
        self._closed = True
        for fd in (self.stdin, self.stdout, self.stderr, self.result):
            _close(fd)
        if not self.exit_box.event.is_set():
            self.kill()
        if self.popen is not None:
            self.wait_exit(5.0)
        _close(self.pidfd)
        if self.hostdir:
            if self.exit_box.event.is_set():
                shutil.rmtree(self.hostdir, ignore_errors=True)
            else:
                self.exit_box.on_set(lambda d=self.hostdir: shutil.rmtree(d, ignore_errors=True))


def _read_ready(w: WorkerProcess, timeout: float) -> dict:
    """Wait for the unit's ``ready`` line on the result channel."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(w.result, selectors.EVENT_READ)
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxError(f"sandbox worker did not become ready within {timeout:.0f}s")
            if not sel.select(left):
                continue
            chunk = os.read(w.result, _READ_CHUNK)
            if not chunk:
                break
            buf += chunk
    finally:
        sel.close()
    line, _, rest = bytes(buf).partition(b"\n")
    if not line:
        raise SandboxError("sandbox worker exited during setup" + _stderr_hint(w))
    msg = json.loads(line)
    if "fatal" in msg:
        raise SandboxError(f"sandbox worker setup failed: {msg['fatal']}" + _stderr_hint(w))
    w.leftover = rest
    w.isolation = msg["isolation"]
    w.isolation["zygote"] = w.zygote
    return msg


def _stderr_hint(w: WorkerProcess) -> str:
    try:
        os.set_blocking(w.stderr, False)
        data = os.read(w.stderr, 4000)
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").strip()
    return f" (stderr: {text[-1500:]})" if text else ""


def _rmtree(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def new_hostdir() -> str:
    return tempfile.mkdtemp(prefix="astra-sbx-")


def spawn_fresh(cfg: SandboxConfig) -> WorkerProcess:
    """Start a new interpreter that isolates itself and waits for one job."""
    hostdir = new_hostdir()
    wcfg = cfg.worker_config()
    wcfg["workdir"] = hostdir
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    try:
        # Popen keeps a passed fd at its own number; the worker moves it to fd 3.
        popen = subprocess.Popen(
            _command(cfg, "fresh", dict(wcfg, result_fd=res_w)), stdin=in_r, stdout=out_w,
            stderr=err_w, pass_fds=(res_w,), env=worker_env(), cwd=hostdir,
            start_new_session=True, close_fds=True,
        )
    except Exception:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w, res_r, res_w):
            _close(fd)
        _rmtree(hostdir)
        raise
    for fd in (in_r, out_w, err_w, res_w):
        _close(fd)
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError:
        pidfd = -1
    w = WorkerProcess(pid=popen.pid, pidfd=pidfd, stdin=in_w, stdout=out_r, stderr=err_r,
                      result=res_r, hostdir=hostdir, exit_box=_ExitBox(), zygote=False,
                      popen=popen)
    try:
        _read_ready(w, cfg.startup_timeout)
    except BaseException:
        w.close()
        raise
    return w


class Zygote:
    """Client of the fork server (see ``_worker.py``)."""

    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self._sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._errlog = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                _command(cfg, "zygote", cfg.worker_config(), str(child.fileno())),
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=self._errlog, env=worker_env(), cwd="/",
                start_new_session=True, close_fds=True,
            )
        finally:
            child.close()
        self._lock = threading.Lock()
        self._pending: dict[int, list] = {}
        self._boxes: dict[int, _ExitBox] = {}
        self._next = 0
        self.dead = False
        self._sock.settimeout(cfg.startup_timeout)
        try:
            msg = self._sock.recv(1 << 20)
        except (TimeoutError, OSError) as e:
            self._fail_start(f"no hello ({e})")
        if not msg:
            self._fail_start("exited during startup")
        hello = json.loads(msg)
        if hello.get("op") != "hello":
            self._fail_start(hello.get("error", str(hello)))
        self.pid = hello["pid"]
        self.isolation = hello["isolation"]
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name="astra-sandbox-zygote")
        self._reader.start()

    def _fail_start(self, why: str):
        try:
            self.proc.kill()
            self.proc.wait(2)
        except Exception:
            pass
        self._errlog.seek(0)
        err = self._errlog.read()[-2000:].decode("utf-8", "replace").strip()
        self._sock.close()
        raise SandboxError(f"sandbox fork server failed to start: {why}" + (f" (stderr: {err})" if err else ""))

    def _read_loop(self) -> None:
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(self._sock, 1 << 20, 8)
            except OSError:
                break
            if not msg:
                for fd in fds:
                    _close(fd)
                break
            m = json.loads(msg)
            op = m.get("op")
            if op in ("spawned", "error"):
                with self._lock:
                    slot = self._pending.pop(m.get("id"), None)
                if slot is None:
                    for fd in fds:
                        _close(fd)
                    continue
                slot[1] = (m, fds)
                slot[0].set()
            elif op == "exited":
                with self._lock:
                    box = self._boxes.pop(m.get("id"), None)
                if box is not None:
                    box.set(m.get("status"), m.get("cpu"), m.get("maxrss_kb"))
        with self._lock:
            self.dead = True
            pending, self._pending = self._pending, {}
            boxes, self._boxes = self._boxes, {}
        for slot in pending.values():
            slot[1] = ({"op": "error", "error": "fork server exited"}, [])
            slot[0].set()
        for box in boxes.values():
            box.set(None)

    def spawn(self) -> WorkerProcess:
        # with a mount namespace the unit works in a private tmpfs: no host directory
        hostdir = None if self.isolation.get("mountns") else new_hostdir()
        with self._lock:
            if self.dead:
                _rmtree(hostdir)
                raise SandboxError("sandbox fork server is not running")
            self._next += 1
            rid = self._next
            slot: list = [threading.Event(), None]
            self._pending[rid] = slot
            box = _ExitBox()
            self._boxes[rid] = box
        try:
            self._sock.send(json.dumps({"op": "spawn", "id": rid, "workdir": hostdir}).encode())
        except OSError as e:
            with self._lock:
                self._pending.pop(rid, None)
                self._boxes.pop(rid, None)
            _rmtree(hostdir)
            raise SandboxError(f"sandbox fork server unreachable: {e}") from e
        if not slot[0].wait(self.cfg.startup_timeout):
            with self._lock:
                self._pending.pop(rid, None)
                self._boxes.pop(rid, None)
            _rmtree(hostdir)
            raise SandboxError("sandbox fork server did not answer")
        m, fds = slot[1]
        if m.get("op") != "spawned":
            for fd in fds:
                _close(fd)
            with self._lock:
                self._boxes.pop(rid, None)
            _rmtree(hostdir)
            raise SandboxError(f"sandbox fork server could not start a unit: {m.get('error')}")
        pidfd = fds[4] if m.get("pidfd") and len(fds) > 4 else -1
        w = WorkerProcess(pid=m["pid"], pidfd=pidfd, stdin=fds[0], stdout=fds[1], stderr=fds[2],
                          result=fds[3], hostdir=hostdir, exit_box=box, zygote=True)
        try:
            _read_ready(w, self.cfg.startup_timeout)
        except BaseException:
            w.close()
            raise
        return w

    def close(self) -> None:
        try:
            self._sock.send(json.dumps({"op": "exit"}).encode())
        except OSError:
            pass
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(3)
        self._sock.close()
        self._errlog.close()


@dataclass
class RawRun:
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    result: dict | None
    status: int | None
    cpu: float | None
    maxrss_kb: int | None
    duration: float
    timed_out: bool
    killed_reason: str | None
    result_too_large: bool = False


def execute(w: WorkerProcess, job: dict, *, timeout: float, max_output: int,
            max_result: int) -> RawRun:
    """Send ``job`` to a ready worker, collect capped output, enforce the wall clock.

    A unit that finishes normally writes its result line and closes stdout, stderr and
    the result channel just before exiting: once all three are at EOF and the result is
    complete the call returns, and the process (killed for good measure) is reaped in the
    background, so namespace teardown is not on the caller's path. Otherwise (crash,
    limit, timeout) the exit status is awaited."""
    if w.used:
        raise SandboxError("a sandbox worker runs exactly one unit")
    w.used = True
    payload = memoryview(json.dumps(job).encode())
    os.set_blocking(w.stdin, False)
    sel = selectors.DefaultSelector()
    sel.register(w.stdin, selectors.EVENT_WRITE, "in")
    sel.register(w.stdout, selectors.EVENT_READ, "out")
    sel.register(w.stderr, selectors.EVENT_READ, "err")
    sel.register(w.result, selectors.EVENT_READ, "res")
    if w.pidfd >= 0:
        sel.register(w.pidfd, selectors.EVENT_READ, "pid")
    bufs = {"out": bytearray(), "err": bytearray()}
    truncated = {"out": False, "err": False}
    res = bytearray(w.leftover)
    open_streams = {"out", "err", "res"}
    killed_reason: str | None = None
    timed_out = exited = result_too_large = False
    t0 = time.monotonic()
    deadline = t0 + timeout
    stop_at: float | None = None  # set once killed or exited: bounded drain

    def kill(reason: str) -> None:
        nonlocal killed_reason, stop_at
        if killed_reason is None:
            killed_reason = reason
        w.kill()
        if stop_at is None:
            stop_at = time.monotonic() + 1.0

    try:
        while open_streams or not (exited or killed_reason):
            now = time.monotonic()
            if killed_reason is None and not exited and now >= deadline:
                timed_out = True
                kill("timeout")
            if exited and stop_at is None:
                stop_at = now + 1.0
            if stop_at is not None and now >= stop_at:
                break
            if not open_streams and w.pidfd < 0:
                # every stream closed without a result and no pidfd: wait for the status
                exited = w.exit_box.event.wait(max(0.0, min(deadline, stop_at or deadline) - now))
                continue
            until = stop_at if stop_at is not None else deadline
            for key, _ in sel.select(max(0.0, min(until - now, 0.5))):
                tag = key.data
                if tag == "in":
                    try:
                        n = os.write(w.stdin, payload)
                        payload = payload[n:]
                    except BlockingIOError:
                        continue
                    except OSError:
                        payload = payload[:0]
                    if not payload:
                        sel.unregister(w.stdin)
                        _close(w.stdin)
                        w.stdin = -1
                elif tag == "pid":
                    exited = True
                    sel.unregister(w.pidfd)
                else:
                    fd = key.fd
                    try:
                        chunk = os.read(fd, _READ_CHUNK)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        sel.unregister(fd)
                        open_streams.discard(tag)
                        continue
                    if tag == "res":
                        if len(res) + len(chunk) > max_result + 65536:
                            result_too_large = True
                            kill("output")
                            continue
                        res += chunk
                    else:
                        buf = bufs[tag]
                        room = max_output - len(buf)
                        if len(chunk) > room:
                            buf += chunk[:max(room, 0)]
                            if not truncated[tag]:
                                truncated[tag] = True
                                kill("output")
                        else:
                            buf += chunk
            if not open_streams and killed_reason is None and _complete(res):
                break  # finished normally: no need to wait for the exit
    finally:
        sel.close()
    duration = time.monotonic() - t0
    result = _parse_result(res)
    status = cpu = maxrss = None
    if result is not None and killed_reason is None and not open_streams:
        # Read the status before the kill: once killed, a unit still in its teardown
        # reports SIGKILL although it finished normally.
        exited_before_kill = w.exit_box.event.is_set()
        w.kill()  # it is exiting anyway; reaped in the background
        if exited_before_kill:
            status = w.exit_box.status
        elif isinstance(result.get("exit_code"), int):
            status = (result["exit_code"] & 0xFF) << 8  # an exit status word: exited(code)
        cpu, maxrss = result.get("cpu"), result.get("maxrss_kb")
    else:
        if not (exited or w.exit_box.event.is_set()):
            w.kill()
        box = w.wait_exit(3.0)
        status, cpu, maxrss = box.status, box.cpu, box.maxrss_kb
        if cpu is None and result is not None:
            cpu, maxrss = result.get("cpu"), result.get("maxrss_kb")
    return RawRun(
        stdout=bytes(bufs["out"]), stderr=bytes(bufs["err"]),
        stdout_truncated=truncated["out"], stderr_truncated=truncated["err"], result=result,
        status=status, cpu=cpu, maxrss_kb=maxrss, duration=duration,
        timed_out=timed_out, killed_reason=killed_reason, result_too_large=result_too_large,
    )


def _complete(res: bytearray) -> bool:
    return res.endswith(b"\n")


def _parse_result(res: bytearray) -> dict | None:
    text = bytes(res).strip()
    if not text:
        return None
    try:
        value = json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return value if isinstance(value, dict) and "status" in value else None
