"""astra sandbox worker: the process side of :mod:`astra.sandbox`.

This file is executed **as a script** by a separate interpreter
(``python -S -s -P -B -X utf8 _worker.py MODE CONFIG``) and must only import the standard
library: neither ``astra`` nor site-packages are importable there.

Modes
-----
``zygote CONFIG CTRL_FD``
    A fork server. It never runs untrusted code. It prepares what every unit shares
    (warm stdlib imports, a private read-only mount view with sensitive directories
    hidden, the seccomp program) and then, for every ``spawn`` request on the control
    socket (a ``SOCK_SEQPACKET`` socket, JSON messages, file descriptors passed with
    ``SCM_RIGHTS``), forks one *unit* process and hands the parent that unit's pipes and
    a pidfd. It reports every unit's exit status (``wait4``) on the same socket.
``fresh CONFIG``
    One unit in a freshly started interpreter (no fork server): the same setup, done
    from scratch. Used for ``fresh=True`` calls and as a fallback.

A unit applies its isolation layers, writes a ``ready`` line (with the isolation report)
to fd 3, reads ONE job (JSON) from stdin until EOF, runs it, writes the result line to
fd 3 and exits. stdout/stderr of the untrusted code go to fds 1 and 2 (pipes read by the
parent, which caps them).
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import random
import resource
import select
import signal
import socket
import stat
import sys
import time

# --------------------------------------------------------------------------------------
# constants

WORKDIR_NS = "/tmp/sandbox"  # the unit's working directory when a mount namespace is used

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_THREAD = 0x00010000
CLONE_NS_MASK = 0x7E020000  # every CLONE_NEW* flag that fits in clone()'s flags

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# landlock (syscall numbers are the same on every architecture)
NR_LANDLOCK_CREATE_RULESET = 444
NR_LANDLOCK_ADD_RULE = 445
NR_LANDLOCK_RESTRICT_SELF = 446
NR_MOUNT_SETATTR = 442
LL_FS_EXECUTE = 1 << 0
LL_FS_WRITE_FILE = 1 << 1
LL_FS_READ_FILE = 1 << 2
LL_FS_READ_DIR = 1 << 3
LL_FS_REMOVE_DIR = 1 << 4
LL_FS_REMOVE_FILE = 1 << 5
LL_FS_MAKE_CHAR = 1 << 6
LL_FS_MAKE_DIR = 1 << 7
LL_FS_MAKE_REG = 1 << 8
LL_FS_MAKE_SOCK = 1 << 9
LL_FS_MAKE_FIFO = 1 << 10
LL_FS_MAKE_BLOCK = 1 << 11
LL_FS_MAKE_SYM = 1 << 12
LL_FS_REFER = 1 << 13  # ABI 2
LL_FS_TRUNCATE = 1 << 14  # ABI 3
LL_FS_IOCTL_DEV = 1 << 15  # ABI 5
LL_NET_BIND_TCP = 1 << 0  # ABI 4
LL_NET_CONNECT_TCP = 1 << 1  # ABI 4
LL_SCOPE_ABSTRACT_UNIX = 1 << 0  # ABI 6
LL_SCOPE_SIGNAL = 1 << 1  # ABI 6
LL_RULE_PATH_BENEATH = 1

# Per-architecture syscall numbers: the seccomp filter denies these with EPERM.
_SYSCALLS = {
    "x86_64": {
        "audit_arch": 0xC000003E, "x32_bit": 0x40000000, "clone": 56, "clone3": 435,
        "capset": 126,
        # signal senders whose first argument is a pid/tgid: only this process may be the target
        "signal_own": {"kill": 62, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297},
        "deny": {
            "socket": 41, "socketpair": 53, "connect": 42, "accept": 43, "accept4": 288,
            "bind": 49, "listen": 50, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322,
            "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
            "perf_event_open": 298, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
            "io_uring_enter": 426, "io_uring_register": 427, "keyctl": 250, "add_key": 248,
            "request_key": 249, "mount": 165, "umount2": 166, "pivot_root": 155,
            "chroot": 161, "unshare": 272, "setns": 308, "init_module": 175,
            "finit_module": 313, "delete_module": 176, "kexec_load": 246,
            "kexec_file_load": 320, "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163,
            "quotactl": 179, "setsid": 112, "setpgid": 109, "setuid": 105, "setgid": 106,
            "setreuid": 113, "setregid": 114, "setresuid": 117, "setresgid": 119,
            "setgroups": 116, "setfsuid": 122, "setfsgid": 123, "personality": 135,
            "mknod": 133, "mknodat": 259, "name_to_handle_at": 303, "open_by_handle_at": 304,
            "lookup_dcookie": 212, "syslog": 103, "vhangup": 153, "iopl": 172, "ioperm": 173,
            "modify_ldt": 154, "settimeofday": 164, "clock_settime": 227,
            "clock_adjtime": 305, "adjtimex": 159, "fanotify_init": 300, "open_tree": 428,
            "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
            "mount_setattr": 442, "pidfd_getfd": 438, "memfd_create": 319,
            "sethostname": 170, "setdomainname": 171, "uselib": 134, "tkill": 200,
            "pidfd_send_signal": 424, "pidfd_open": 434,
        },
    },
    "aarch64": {
        "audit_arch": 0xC00000B7, "x32_bit": None, "clone": 220, "clone3": 435,
        "capset": 91,
        "signal_own": {"kill": 129, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240},
        "deny": {
            "socket": 198, "socketpair": 199, "connect": 203, "accept": 202, "accept4": 242,
            "bind": 200, "listen": 201, "execve": 221, "execveat": 281, "ptrace": 117,
            "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272,
            "perf_event_open": 241, "bpf": 280, "userfaultfd": 282, "io_uring_setup": 425,
            "io_uring_enter": 426, "io_uring_register": 427, "keyctl": 219, "add_key": 217,
            "request_key": 218, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
            "unshare": 97, "setns": 268, "init_module": 105, "finit_module": 273,
            "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294, "reboot": 142,
            "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60, "setsid": 157,
            "setpgid": 154, "setuid": 146, "setgid": 144, "setreuid": 145, "setregid": 143,
            "setresuid": 147, "setresgid": 149, "setgroups": 159, "setfsuid": 151,
            "setfsgid": 152, "personality": 92, "mknodat": 33, "name_to_handle_at": 264,
            "open_by_handle_at": 265, "lookup_dcookie": 18, "syslog": 116, "vhangup": 58,
            "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
            "fanotify_init": 262, "open_tree": 428, "move_mount": 429, "fsopen": 430,
            "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
            "pidfd_getfd": 438, "memfd_create": 279, "sethostname": 161,
            "setdomainname": 162, "tkill": 130, "pidfd_send_signal": 424, "pidfd_open": 434,
        },
    },
}
# Syscalls numbered at or above this (added after the table above was reviewed) get
# ENOSYS, so a new kernel feature is never silently reachable.
SECCOMP_FIRST_UNREVIEWED = 448

# Paths that are never hidden (the interpreter and its shared libraries live there).
PROTECTED = ("/", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc",
             "/proc", "/dev", "/sys")
# What the unit may read (Landlock), besides the stdlib directories and its workdir.
READ_ALLOW = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/bin", "/sbin")
DEV_ALLOW = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

# Modules untrusted code may not import (native-memory access, subinterpreters without
# our audit hook, CPython test helpers that are memory-unsafe on purpose).
BLOCKED_IMPORTS = frozenset({
    "ctypes", "_ctypes", "_ctypes_test", "_xxsubinterpreters", "_xxinterpchannels",
    "_testcapi", "_testinternalcapi", "_testmultiphase", "_testbuffer", "_testclinic",
    "_testimportmultiple", "_xxtestfuzz", "_testsinglephase",
})
BLOCKED_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "subprocess.Popen", "pty.spawn", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "code.__new__",
    "urllib.Request", "webbrowser.open",
})
BLOCKED_EVENT_PREFIXES = ("ctypes.", "socket.", "_ssl.")
EVENT_WHAT = {
    "os": "starting or replacing processes", "subprocess": "starting processes",
    "pty": "starting processes", "gc": "walking interpreter objects (gc)",
    "code": "building code objects", "urllib": "network access",
    "webbrowser": "starting processes", "socket": "network access (sockets)",
    "_ssl": "network access (ssl)", "ctypes": "ctypes (native memory and library calls)",
}
PATH_WRITE_EVENTS = {
    "os.remove": 0, "os.rmdir": 0, "os.mkdir": 0, "os.chmod": 0, "os.chown": 0,
    "os.truncate": 0, "os.utime": 0, "os.symlink": 1, "os.link": 1, "os.rename": 1,
    "os.mkfifo": 0, "os.mknod": 0, "os.setxattr": 0, "os.removexattr": 0,
    "shutil.rmtree": 0,
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

DEFAULT_WARM_IMPORTS = (
    "json", "re", "datetime", "math", "collections", "itertools", "functools", "random",
    "statistics", "decimal", "fractions", "string", "typing", "dataclasses", "enum",
    "hashlib", "time", "calendar", "textwrap", "copy", "heapq", "bisect", "operator",
    "zoneinfo", "unicodedata", "difflib", "csv", "io", "base64", "struct", "traceback",
    "linecache", "ast", "types", "abc", "contextlib", "numbers", "pprint", "urllib.parse",
    "html", "ipaddress", "uuid", "secrets", "locale", "codecs", "encodings.idna", "threading",
)


class SandboxViolation(PermissionError):
    """Raised inside the sandbox by the audit-hook layer."""


# --------------------------------------------------------------------------------------
# small helpers


def _now() -> float:
    return time.monotonic()


def _write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:
            return False
        view = view[n:]
    return True


class _Encoder(json.JSONEncoder):
    """The worker's own JSON encoder: the unit's code may replace ``json.dumps`` or patch
    ``json.JSONEncoder`` in its process; the result line must not depend on either."""

    encode = json.JSONEncoder.encode
    iterencode = json.JSONEncoder.iterencode
    default = json.JSONEncoder.default


_ENCODE_ASCII = _Encoder(ensure_ascii=True, default=str).encode
_ENCODE_UTF8 = _Encoder(ensure_ascii=False).encode


def _send_line(fd: int, obj: dict) -> bool:
    return _write_all(fd, (_ENCODE_ASCII(obj) + "\n").encode())


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


# --------------------------------------------------------------------------------------
# libc bindings (ctypes is used only during setup, before any untrusted code runs)


class _Libc:
    def __init__(self) -> None:
        import ctypes

        self.ct = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                    ctypes.c_ulong, ctypes.c_char_p]
        self.libc.unshare.argtypes = [ctypes.c_int]
        self.libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                    ctypes.c_ulong, ctypes.c_ulong]
        self.arch = os.uname().machine
        self.table = _SYSCALLS.get(self.arch)

    def _check(self, ret: int, what: str) -> int:
        if ret < 0:
            e = self.ct.get_errno()
            raise OSError(e, f"{what}: {os.strerror(e)}")
        return ret

    def syscall(self, nr: int, *args) -> int:
        cargs = [a if isinstance(a, self.ct.c_void_p) else self.ct.c_long(a) for a in args]
        return self.libc.syscall(self.ct.c_long(nr), *cargs)

    def unshare(self, flags: int) -> None:
        self._check(self.libc.unshare(flags), "unshare")

    def mount(self, src: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        def enc(s):
            return (s.encode() if s is not None else None)
        self._check(self.libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)),
                    f"mount {target}")

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> None:
        self._check(self.libc.prctl(option, arg2, arg3, 0, 0), f"prctl({option})")

    def mount_setattr_recursive(self, path: str, attr_set: int) -> None:
        ct = self.ct
        attr = (ct.c_uint64 * 4)(attr_set, 0, 0, 0)
        cpath = ct.create_string_buffer(path.encode())
        ret = self.syscall(NR_MOUNT_SETATTR, AT_FDCWD, ct.c_void_p(ct.addressof(cpath)),
                           AT_RECURSIVE, ct.c_void_p(ct.addressof(attr)), ct.sizeof(attr))
        self._check(ret, "mount_setattr")

    def capset_clear(self) -> None:
        if not self.table:
            raise OSError(errno.ENOSYS, f"capset: unsupported architecture {self.arch}")
        ct = self.ct
        header = (ct.c_uint32 * 2)(0x20080522, 0)
        data = (ct.c_uint32 * 6)()
        self._check(self.syscall(self.table["capset"], ct.c_void_p(ct.addressof(header)),
                                 ct.c_void_p(ct.addressof(data))), "capset")

    def landlock_abi(self) -> int:
        ret = self.syscall(NR_LANDLOCK_CREATE_RULESET, self.ct.c_void_p(None), 0, 1)
        return int(ret) if ret > 0 else 0

    def landlock_apply(self, abi: int, rules: list[tuple[str, int]], handled_fs: int,
                       handled_net: int, scoped: int) -> list[str]:
        """Create a ruleset, add ``(path, access)`` rules, restrict this process. Returns
        the paths that could not be added (missing)."""
        ct = self.ct
        size = 8 if abi < 4 else (16 if abi < 6 else 24)
        attr = (ct.c_uint64 * 3)(handled_fs, handled_net, scoped)
        fd = self._check(self.syscall(NR_LANDLOCK_CREATE_RULESET, ct.c_void_p(ct.addressof(attr)),
                                      size, 0), "landlock_create_ruleset")
        skipped = []
        try:
            rule = ct.create_string_buffer(12)
            for path, access in rules:
                try:
                    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    skipped.append(path)
                    continue
                try:
                    if not stat.S_ISDIR(os.fstat(pfd).st_mode):
                        # file rules accept only file rights
                        access &= (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE
                                   | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)
                    access &= handled_fs
                    ct.memmove(rule, access.to_bytes(8, "little") + pfd.to_bytes(4, "little", signed=True), 12)
                    self._check(self.syscall(NR_LANDLOCK_ADD_RULE, fd, LL_RULE_PATH_BENEATH,
                                             ct.c_void_p(ct.addressof(rule)), 0),
                                f"landlock_add_rule {path}")
                finally:
                    os.close(pfd)
            self._check(self.syscall(NR_LANDLOCK_RESTRICT_SELF, fd, 0), "landlock_restrict_self")
        finally:
            os.close(fd)
        return skipped

    def seccomp_install(self, prog: bytes) -> None:
        ct = self.ct
        buf = ct.create_string_buffer(prog, len(prog))

        class SockFprog(ct.Structure):
            _fields_ = [("len", ct.c_ushort), ("filter", ct.c_void_p)]

        fprog = SockFprog(len(prog) // 8, ct.addressof(buf))
        ret = self.libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ct.addressof(fprog), 0, 0)
        self._check(ret, "prctl(PR_SET_SECCOMP)")


def build_seccomp_program(table: dict, own_pid: int) -> bytes:
    """A classic-BPF seccomp filter: wrong architecture → kill; x32 ABI → kill; syscalls
    newer than the reviewed table → ENOSYS; clone3 → ENOSYS (libc falls back to clone);
    clone → allowed only for threads without namespace flags; kill/tgkill/sigqueue → only
    to this process (``own_pid``) or its own process group (0); the deny list → EPERM."""
    import struct

    LD_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
    prog: list = []  # items: (code, jt_label|int, jf_label|int, k) or ("label", name)

    def op(code, k, jt=0, jf=0):
        prog.append((code, jt, jf, k))

    def label(name):
        prog.append(("label", name))

    op(LD_ABS, 4)  # seccomp_data.arch
    op(JEQ, table["audit_arch"], jt=0, jf="kill")
    op(LD_ABS, 0)  # seccomp_data.nr
    if table.get("x32_bit"):
        op(JSET, table["x32_bit"], jt="kill")
    op(JGE, SECCOMP_FIRST_UNREVIEWED, jt="enosys")
    op(JEQ, table["clone"], jt="clone")
    op(JEQ, table["clone3"], jt="enosys")
    for nr in sorted(set(table["signal_own"].values())):
        op(JEQ, nr, jt="signal")
    for nr in sorted(set(table["deny"].values())):
        op(JEQ, nr, jt="eperm")
    op(RET, SECCOMP_RET_ALLOW)
    label("clone")
    op(LD_ABS, 16)  # low 32 bits of args[0] (clone flags)
    op(JSET, CLONE_NS_MASK, jt="eperm")
    op(JSET, CLONE_THREAD, jt="allow", jf="eperm")
    label("signal")
    op(LD_ABS, 20)  # high 32 bits of args[0] (the pid): must be 0
    op(JEQ, 0, jt=0, jf="eperm")
    op(LD_ABS, 16)  # low 32 bits of args[0]
    op(JEQ, own_pid & 0xFFFFFFFF, jt="allow")
    op(JEQ, 0, jt="allow", jf="eperm")
    label("allow")
    op(RET, SECCOMP_RET_ALLOW)
    label("eperm")
    op(RET, SECCOMP_RET_ERRNO | errno.EPERM)
    label("enosys")
    op(RET, SECCOMP_RET_ERRNO | errno.ENOSYS)
    label("kill")
    op(RET, SECCOMP_RET_KILL_PROCESS)

    labels, idx = {}, 0
    for item in prog:
        if item[0] == "label":
            labels[item[1]] = idx
        else:
            idx += 1
    out, idx = [], 0
    for item in prog:
        if item[0] == "label":
            continue
        code, jt, jf, k = item
        if isinstance(jt, str):
            jt = labels[jt] - idx - 1
        if isinstance(jf, str):
            jf = labels[jf] - idx - 1
        if not (0 <= jt <= 255 and 0 <= jf <= 255):
            raise ValueError("seccomp jump out of range")
        out.append(struct.pack("<HBBI", code, jt, jf, k))
        idx += 1
    return b"".join(out)


# --------------------------------------------------------------------------------------
# isolation setup


def _is_under(path: str, root: str) -> bool:
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


def _needed_paths() -> list[str]:
    """Directories the interpreter needs to keep importing the stdlib (the stdlib and the
    installation's ``lib`` directory, which may hold libpython and the libraries that
    extension modules link against)."""
    out: list[str] = []
    for p in list(sys.path) + [os.path.join(sys.base_prefix, "lib")]:
        if p and os.path.isdir(p):
            rp = os.path.realpath(p)
            if not any(_is_under(rp, q) for q in out):
                out = [q for q in out if not _is_under(q, rp)] + [rp]
    return out


def _others_can_reach(path: str) -> bool:
    """Whether an unprivileged uid can traverse to and list ``path``."""
    cur = "/"
    for part in [p for p in path.split("/") if p]:
        cur = os.path.join(cur, part)
        try:
            st = os.stat(cur)
        except OSError:
            return False
        if not st.st_mode & stat.S_IXOTH:
            return False
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


class Setup:
    """Applies isolation layers in order and records what was applied."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.lib: _Libc | None = None
        self.report: dict = {
            "mode": "none", "process": True, "userns": False, "netns": False,
            "mountns": False, "ipcns": False, "utsns": False, "readonly_root": False,
            "hidden_paths": [], "proc_hidepid": False, "minimal_dev": False, "workdir_tmpfs": False,
            "uid": os.getuid(), "dropped_privileges": False, "private_uid": False, "caps_dropped": False,
            "no_new_privs": False, "landlock": 0, "seccomp": False, "audit_hook": False,
            "rlimits": {}, "python_flags": [], "env_scrubbed": True, "workdir": None,
            "degraded": [],
        }
        self.seccomp_table: dict | None = None
        self.landlock_abi = 0
        self.needed = _needed_paths()
        self.base_euid = os.geteuid()
        try:
            self.lib = _Libc()
        except Exception as e:  # pragma: no cover - ctypes missing
            self.degrade(f"ctypes unavailable ({_err(e)}): no namespaces, landlock, seccomp")

    def degrade(self, msg: str) -> None:
        if msg not in self.report["degraded"]:
            self.report["degraded"].append(msg)

    # ---- shared part (done once in the zygote, or in a fresh unit) -----------------
    def prepare(self, fresh: bool) -> None:
        """Probe, build the seccomp program, enter a mount namespace and build the
        read-only view. In zygote mode this runs in the zygote itself (its children copy
        the view); in fresh mode in the unit, combined with the per-unit namespaces."""
        cfg, lib = self.cfg, self.lib
        if lib is not None and cfg.get("use_seccomp", True):
            if lib.table is None:
                self.degrade(f"seccomp: no syscall table for architecture {lib.arch}")
            else:
                self.seccomp_table = lib.table
                build_seccomp_program(lib.table, os.getpid())  # fail early if it cannot be built
        elif not cfg.get("use_seccomp", True):
            self.degrade("seccomp: disabled by configuration")
        if lib is not None and cfg.get("use_landlock", True):
            self.landlock_abi = lib.landlock_abi()
            if not self.landlock_abi:
                self.degrade("landlock: not supported by this kernel")
        elif not cfg.get("use_landlock", True):
            self.degrade("landlock: disabled by configuration")
        if lib is None or not cfg.get("use_namespaces", True):
            if not cfg.get("use_namespaces", True):
                self.degrade("namespaces: disabled by configuration")
            return
        unit_flags = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
        extra = unit_flags if fresh else 0
        try:
            if self.base_euid == 0:
                lib.unshare(CLONE_NEWNS | extra)
                self.report["mode"] = "namespaces"
            else:
                raise PermissionError("not root")
        except OSError as e:
            uid, gid = os.getuid(), os.getgid()
            try:
                lib.unshare(CLONE_NEWUSER | CLONE_NEWNS | extra)
                with open("/proc/self/setgroups", "w") as f:
                    f.write("deny")
                with open("/proc/self/uid_map", "w") as f:
                    f.write(f"{uid} {uid} 1")
                with open("/proc/self/gid_map", "w") as f:
                    f.write(f"{gid} {gid} 1")
                self.report["mode"] = "userns"
                self.report["userns"] = True
            except OSError as e2:
                self.degrade(f"namespaces: unavailable (unshare: {e}; user namespace: {e2}); "
                             "no mount/network isolation, relying on landlock/seccomp/uid")
                return
        self.report["mountns"] = True
        if fresh:
            self.report.update(netns=True, ipcns=True, utsns=True)
        try:
            self._build_view()
        except OSError as e:
            # units then fail loudly (no working directory) rather than run half-isolated
            self.degrade(f"mount view: could not be built ({e})")
            raise

    def _build_view(self) -> None:
        lib = self.lib
        lib.mount(None, "/", None, MS_REC | MS_PRIVATE)
        needed = self.needed
        candidates = list(self.cfg.get("hide_paths", [])) + ["/tmp"]
        # any non-traversable ancestor of a needed path must be hidden and re-exposed
        for n in needed:
            cur = "/"
            for part in [p for p in n.split("/") if p]:
                cur = os.path.join(cur, part)
                try:
                    if not os.stat(cur).st_mode & stat.S_IXOTH:
                        candidates.append(cur)
                        break
                except OSError:
                    break
        hide: list[str] = []
        for raw in sorted({os.path.realpath(c) for c in candidates if c}, key=len):
            if raw in PROTECTED or any(_is_under(p, raw) for p in PROTECTED if p != "/"):
                continue
            if any(_is_under(raw, n) for n in needed):
                continue  # the stdlib itself (or inside it): keep it
            if not os.path.isdir(raw) or os.path.islink(raw):
                continue
            if any(_is_under(raw, h) for h in hide):
                continue
            hide.append(raw)
        fds = {n: os.open(n, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for n in needed}
        dev_fds = {}
        for d in DEV_ALLOW:
            try:
                dev_fds[d] = os.open(d, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                pass
        try:
            for h in hide:
                lib.mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=0755")
                for n, fd in fds.items():
                    if _is_under(n, h) and n != h:
                        os.makedirs(n, mode=0o755, exist_ok=True)
                        lib.mount(f"/proc/self/fd/{fd}", n, None, MS_BIND | MS_REC)
                if h == "/tmp":
                    os.makedirs(WORKDIR_NS, mode=0o755, exist_ok=True)
            self.report["hidden_paths"] = hide
            try:
                lib.mount_setattr_recursive("/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
                self.report["readonly_root"] = True
            except OSError as e:
                self._remount_ro_fallback(e)
            self._minimal_dev(dev_fds)
        finally:
            for fd in list(fds.values()) + list(dev_fds.values()):
                os.close(fd)
        for opts in ("hidepid=invisible", "hidepid=2"):
            try:
                lib.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts)
                self.report["proc_hidepid"] = True
                break
            except OSError as e:
                err = e
        else:
            self.degrade(f"proc: could not mount a private /proc with hidepid ({err}); "
                         "other processes stay visible in /proc (landlock limits reads to /proc/self)")

    def _minimal_dev(self, dev_fds: dict) -> None:
        """Replace /dev with a read-only tmpfs holding only null, zero, full, random and
        urandom (bind mounts of the real nodes; the rest of the tree is nodev)."""
        lib = self.lib
        try:
            lib.mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
            for path, fd in dev_fds.items():
                with open(path, "w"):
                    pass
                lib.mount(f"/proc/self/fd/{fd}", path, None, MS_BIND)
                lib.mount(None, path, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC)
            for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                                 ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
                os.symlink(target, f"/dev/{name}")
            lib.mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
            self.report["minimal_dev"] = True
        except OSError as e:
            self.degrade(f"/dev: could not build a minimal /dev ({e}); device nodes are unusable (nodev)")

    def _remount_ro_fallback(self, first_error: OSError) -> None:
        flagmap = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
                   "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME,
                   "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}
        failed = []
        with open("/proc/self/mountinfo") as f:
            rows = [line.split() for line in f]
        for row in rows:
            mp = row[4].encode().decode("unicode_escape")
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY
            for o in row[5].split(","):
                flags |= flagmap.get(o, 0)
            try:
                self.lib.mount(None, mp, None, flags)
            except OSError:
                failed.append(mp)
        if failed:
            self.degrade(f"read-only view incomplete (mount_setattr: {first_error}); still writable "
                         f"mounts: {failed[:8]}")
        self.report["readonly_root"] = not failed

    # ---- per-unit part ---------------------------------------------------------------
    def unit(self, fresh: bool, host_workdir: str) -> str:
        cfg, lib, rep = self.cfg, self.lib, self.report
        ns = rep["mountns"]
        if ns and not fresh:
            try:
                lib.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
                rep.update(netns=True, ipcns=True, utsns=True)
            except OSError as e:
                self.degrade(f"namespaces: per-unit unshare failed ({e})")
                ns = rep["mountns"] = False
        uid = self._pick_uid()
        if ns:
            workdir = WORKDIR_NS
            size = int(cfg.get("disk_mb", 64))
            owner = f",uid={uid},gid={uid}" if uid is not None else ""
            lib.mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      f"size={size}m,mode=0700{owner}")
            rep["workdir_tmpfs"] = True
        else:
            if not host_workdir:
                raise RuntimeError("no mount namespace and no host working directory")
            workdir = host_workdir
            os.chmod(workdir, 0o700)
            if uid is not None:
                os.chown(workdir, uid, uid)
        os.chdir(workdir)
        rep["workdir"] = workdir
        os.environ.clear()
        os.environ.update(cfg.get("env", {}))
        os.environ["HOME"] = os.environ["TMPDIR"] = workdir
        if "tempfile" in sys.modules:
            sys.modules["tempfile"].tempdir = workdir
        # privileges
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            rep["uid"] = uid
            rep["dropped_privileges"] = True
            rep["caps_dropped"] = True
            rep["private_uid"] = uid != 65534
        else:
            rep["uid"] = os.getuid()
            if lib is not None:
                try:
                    lib.capset_clear()
                    rep["caps_dropped"] = True
                except OSError as e:
                    self.degrade(f"capabilities: could not drop ({e})")
        if not rep["private_uid"]:
            # RLIMIT_NPROC counts every process of the uid: with a shared uid it would cap
            # the sandbox by what that user runs elsewhere, so it is not applied.
            self.degrade("rlimit nproc: not applied (the uid is shared with other processes); "
                         "threads are bounded by the memory limit, new processes by seccomp")
        if lib is not None:
            lib.prctl(PR_SET_NO_NEW_PRIVS, 1)
            rep["no_new_privs"] = True
            lib.prctl(PR_SET_DUMPABLE, 0)
            if self.landlock_abi:
                self._landlock(workdir)
            if self.seccomp_table is not None:
                lib.seccomp_install(build_seccomp_program(self.seccomp_table, os.getpid()))
                rep["seccomp"] = True
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        return workdir

    def _pick_uid(self) -> int | None:
        """The unprivileged uid to run as, or None to keep the current one."""
        rep = self.report
        if not self.cfg.get("drop_privileges", True):
            if self.base_euid == 0:
                self.degrade("privileges: drop disabled by configuration (runs as root without capabilities)")
            return None
        if rep["userns"] or self.base_euid != 0:
            return None  # not root: nothing to drop to (capabilities are cleared instead)
        if not rep["mountns"] and not all(_others_can_reach(n) for n in self.needed):
            if self.landlock_abi >= 1 and self.seccomp_table is not None:
                self.degrade("privileges: stays uid 0 without capabilities (the stdlib is not readable "
                             "by an unprivileged uid and there is no mount namespace); files are "
                             "confined by landlock, signals by seccomp")
                return None
            _warm(self)  # the stdlib becomes unreachable after the drop: import what we can now
            self.degrade("privileges: dropped although the stdlib is not readable by an unprivileged "
                         "uid (no mount namespace, no landlock): only pre-imported modules work")
        base, span = 0x40000000, 1 << 24
        try:
            with open("/proc/self/uid_map") as f:
                rows = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
            covered = any(inner <= base and base + span <= inner + count for inner, _, count in rows)
        except OSError:
            covered = False
        if covered:
            return base + random.SystemRandom().randrange(span)
        self.degrade("privileges: shared uid 65534 (no private uid range mapped): RLIMIT_NPROC is "
                     "shared with other processes of that uid")
        return 65534

    def _landlock(self, workdir: str) -> None:
        abi = self.landlock_abi
        fs_all = (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_READ_DIR
                  | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR
                  | LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK
                  | LL_FS_MAKE_SYM)
        if abi >= 2:
            fs_all |= LL_FS_REFER
        if abi >= 3:
            fs_all |= LL_FS_TRUNCATE
        if abi >= 5:
            fs_all |= LL_FS_IOCTL_DEV
        net = (LL_NET_BIND_TCP | LL_NET_CONNECT_TCP) if abi >= 4 else 0
        scoped = (LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL) if abi >= 6 else 0
        read = LL_FS_READ_FILE | LL_FS_READ_DIR | LL_FS_EXECUTE
        rw = fs_all & ~(LL_FS_MAKE_CHAR | LL_FS_MAKE_BLOCK | LL_FS_EXECUTE | LL_FS_IOCTL_DEV)
        rules = [(p, read) for p in self.needed]
        rules += [(p, read) for p in READ_ALLOW + tuple(self.cfg.get("read_paths", [])) if os.path.exists(p)]
        rules += [(p, LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_TRUNCATE) for p in DEV_ALLOW]
        if self.report["proc_hidepid"]:
            rules.append(("/proc", LL_FS_READ_FILE | LL_FS_READ_DIR))
        else:
            rules.append((f"/proc/{os.getpid()}", LL_FS_READ_FILE | LL_FS_READ_DIR))
        rules.append((workdir, rw))
        self.lib.landlock_apply(abi, [(p, a) for p, a in rules if os.path.exists(p)], fs_all, net, scoped)
        self.report["landlock"] = abi
        if abi < 4:
            self.degrade(f"landlock: ABI {abi} has no TCP rules (network relies on netns/seccomp)")
        if abi < 6:
            self.degrade(f"landlock: ABI {abi} has no signal/abstract-socket scoping")


# --------------------------------------------------------------------------------------
# the audit hook (a Python-level extra layer; the kernel layers are the boundary)


def install_audit_hook(workdir: str, violations: list) -> None:
    allowed_write_roots = (os.path.realpath(workdir),)
    allowed_files = ("/dev/null",)
    realpath, fspath, fsdecode = os.path.realpath, os.fspath, os.fsdecode
    getpid = os.getpid
    blocked_imports, blocked_events = BLOCKED_IMPORTS, BLOCKED_EVENTS
    prefixes = BLOCKED_EVENT_PREFIXES
    path_events = PATH_WRITE_EVENTS

    def outside(p) -> bool:
        if isinstance(p, int):
            return False
        try:
            s = realpath(fsdecode(fspath(p)))
        except Exception:
            return True
        if s in allowed_files:
            return False
        return not any(s == r or s.startswith(r + "/") for r in allowed_write_roots)

    def deny(event: str, what: str) -> None:
        if len(violations) < 100:
            violations.append(f"{event}: {what}")
        raise SandboxViolation(f"astra sandbox: {what} is not allowed ({event})")

    def hook(event: str, args: tuple) -> None:
        if event == "import":
            name = args[0]
            if name in blocked_imports or name.split(".", 1)[0] in blocked_imports:
                deny(event, f"importing {name}")
            return
        if event == "open":
            path, mode, flags = args[0], args[1], args[2]
            writing = (flags & WRITE_FLAGS) if isinstance(flags, int) and flags else (
                isinstance(mode, str) and any(c in mode for c in "wax+"))
            if writing and path is not None and outside(path):
                deny(event, f"writing {path!r} outside the working directory")
            return
        if event in blocked_events:
            deny(event, EVENT_WHAT.get(event.split(".", 1)[0], "this operation"))
        if event.startswith(prefixes):
            deny(event, EVENT_WHAT.get(event.split(".", 1)[0], "this operation"))
        if event in path_events:
            idx = path_events[event]
            for p in args[: idx + 1]:
                if p is not None and outside(p):
                    deny(event, f"modifying {p!r} outside the working directory")
            return
        if event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            pid = args[0]
            if event == "os.killpg" or (event == "os.kill" and pid not in (getpid(), 0)):
                deny(event, f"signalling process {pid}")

    sys.addaudithook(hook)


def _purge_blocked_modules() -> None:
    for name in list(sys.modules):
        if name in BLOCKED_IMPORTS or name.split(".", 1)[0] in BLOCKED_IMPORTS:
            del sys.modules[name]


# --------------------------------------------------------------------------------------
# running a job


def _apply_limits(limits: dict) -> dict:
    applied = {}

    def setl(name: str, res: int, soft: int, hard: int | None = None) -> None:
        hard = soft if hard is None else hard
        cur_soft, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
            soft = min(soft, hard)
        resource.setrlimit(res, (soft, hard))
        applied[name] = soft

    mb = 1024 * 1024
    if limits.get("memory_mb"):
        setl("as_bytes", resource.RLIMIT_AS, int(limits["memory_mb"]) * mb)
    if limits.get("cpu_seconds"):
        cpu = max(1, int(-(-float(limits["cpu_seconds"]) // 1)))
        setl("cpu_seconds", resource.RLIMIT_CPU, cpu, cpu + 1)
    if limits.get("fsize_mb") is not None:
        setl("fsize_bytes", resource.RLIMIT_FSIZE, int(limits["fsize_mb"]) * mb)
    if limits.get("nproc"):
        setl("nproc", resource.RLIMIT_NPROC, int(limits["nproc"]))
    if limits.get("nofile"):
        setl("nofile", resource.RLIMIT_NOFILE, int(limits["nofile"]))
    setl("core", resource.RLIMIT_CORE, 0)
    setl("memlock", resource.RLIMIT_MEMLOCK, 0)
    setl("msgqueue", resource.RLIMIT_MSGQUEUE, 0)
    return applied


def _write_files(workdir: str, files: dict) -> None:
    for rel, content in (files or {}).items():
        norm = os.path.normpath(rel)
        if os.path.isabs(norm) or norm.startswith(".."):
            raise ValueError(f"file path {rel!r} must be relative and stay in the working directory")
        path = os.path.join(workdir, norm)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)


def _jsonable(value, depth: int = 0) -> tuple[object, bool]:
    """Convert to JSON-compatible data; the flag says whether anything was coerced."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value, False
    if depth > 200:
        return repr(value)[:200], True
    if isinstance(value, dict):
        out, coerced = {}, False
        for k, v in value.items():
            if not isinstance(k, str):
                coerced = True
                k = k if isinstance(k, (int, float, bool)) or k is None else str(k)
            cv, c = _jsonable(v, depth + 1)
            out[k] = cv
            coerced |= c
        return out, coerced
    if isinstance(value, (list, tuple)):
        items = [_jsonable(v, depth + 1) for v in value]
        return [i[0] for i in items], isinstance(value, tuple) or any(i[1] for i in items)
    if isinstance(value, (set, frozenset)):
        items = [_jsonable(v, depth + 1)[0] for v in value]
        try:
            items.sort()
        except TypeError:
            items.sort(key=repr)
        return items, True
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace"), True
    return str(value), True


def _format_exc(e: BaseException) -> dict:
    """Type, message and a traceback of the sandboxed code's frames only."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
    text = "".join(["Traceback (most recent call last):\n"] if frames else [])
    text += "".join(traceback.format_list(frames))
    text += "".join(traceback.format_exception_only(type(e), e))
    if len(text) > 8000:
        text = text[:2000] + "\n...\n" + text[-6000:]
    msg = str(e)
    if len(msg) > 2000:
        msg = msg[:2000] + "..."
    info = {"type": type(e).__name__, "message": msg, "traceback": text}
    if isinstance(e, OSError) and isinstance(e.errno, int):
        info["errno"] = e.errno
    return info


def run_job(job: dict, workdir: str, violations: list) -> tuple[dict, int]:
    import ast
    import linecache

    res: dict = {"violations": violations}
    mode = job.get("mode", "exec")
    code = job.get("code", "")
    fname = "<sandbox>"
    linecache.cache[fname] = (len(code), None, code.splitlines(True), fname)
    t0 = _now()
    exit_code = 0
    try:
        _write_files(workdir, job.get("files") or {})
    except Exception as e:
        res.update(status="raised", error={**_format_exc(e), "phase": "load"})
        return res, 1
    # a real module object, registered in sys.modules (dataclasses, pickle, typing and
    # enum look the defining module up there)
    modname = "__main__" if mode == "exec" else "__sandbox__"
    module = type(sys)(modname)
    module.__file__ = os.path.join(workdir, "__sandbox__.py")
    module.__builtins__ = builtins
    sys.modules[modname] = module
    g = module.__dict__
    phase = "load"
    try:
        obj = compile(code, fname, "exec", dont_inherit=True)
        exec(obj, g)
        if mode == "call":
            name = job["name"]
            fn = g.get(name)
            if fn is None:
                raise NameError(f"the code does not define {name!r}")
            if not callable(fn):
                raise TypeError(f"{name!r} is not callable (it is {type(fn).__name__})")
            args = ast.literal_eval(job.get("args_src") or "[]")
            kwargs = ast.literal_eval(job.get("kwargs_src") or "{}")
            phase = "call"
            value = fn(*args, **kwargs)
            phase = "serialize"
            data, coerced = _jsonable(value)
            text = _ENCODE_UTF8(data)
            cap = int(job.get("max_result", 16 * 1024 * 1024))
            if len(text) > cap:
                raise ValueError(f"return value too large: {len(text)} bytes of JSON > {cap}")
            res.update(status="ok", value_json=text, coerced=coerced)
        else:
            res.update(status="ok")
    except SystemExit as e:
        c = e.code
        if mode == "exec":
            if c is None:
                exit_code = 0
            elif isinstance(c, int):
                exit_code = c & 0xFF
            else:
                print(c, file=sys.stderr)
                exit_code = 1
            res.update(status="exit", exit_code=exit_code)
        else:
            res.update(status="raised", error={**_format_exc(e), "phase": phase})
    except BaseException as e:  # everything the code raises is reported
        info = _format_exc(e)
        if mode == "exec":
            try:
                sys.stderr.write(info["traceback"])
            except Exception:
                pass
            exit_code = 1
        res.update(status="raised", error={**info, "phase": phase})
    res["exec_time"] = _now() - t0
    return res, exit_code


def _reopen_std_streams() -> None:
    import io

    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8",
                                  errors="backslashreplace", write_through=True)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def unit_main(setup: Setup, fresh: bool, host_workdir: str) -> None:
    """Runs in the unit process (fds 0-3 already in place). Never returns."""
    code = 70
    try:
        if fresh:
            setup.prepare(fresh=True)
        workdir = setup.unit(fresh=fresh, host_workdir=host_workdir)
        _reopen_std_streams()
        sys.argv = ["<sandbox>"]
        violations: list = []
        if setup.cfg.get("use_audit_hook", True):
            _purge_blocked_modules()
            setup.lib = None
            install_audit_hook(workdir, violations)
            setup.report["audit_hook"] = True
        else:
            setup.degrade("audit hook: disabled by configuration")
        setup.report["python_flags"] = list(setup.cfg.get("python_flags", []))
        if not _send_line(3, {"ready": True, "pid": os.getpid(), "isolation": setup.report}):
            os._exit(71)
        chunks = []
        while True:
            b = os.read(0, 1 << 16)
            if not b:
                break
            chunks.append(b)
        if not chunks:
            os._exit(0)  # the parent discarded this worker
        job = json.loads(b"".join(chunks))
        limits = dict(job.get("limits") or {})
        if not setup.report.get("private_uid"):
            limits.pop("nproc", None)  # see Setup.unit
        try:
            applied = _apply_limits(limits)
        except Exception as e:
            _send_line(3, {"status": "sandbox_error", "error": {"type": type(e).__name__,
                                                               "message": f"setting limits: {e}"}})
            os._exit(70)
        res, code = run_job(job, workdir, violations)
        res["rlimits"] = applied
        res["exit_code"] = code
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        try:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            res["cpu"], res["maxrss_kb"] = ru.ru_utime + ru.ru_stime, ru.ru_maxrss
        except Exception:
            pass
        if not _send_line(3, res):
            code = code or 71
        # closing every stream tells the parent the unit is done (it need not wait for
        # the exit, whose namespace teardown takes a few milliseconds)
        for fd in (0, 1, 2, 3):
            try:
                os.close(fd)
            except OSError:
                pass
    except BaseException as e:  # setup failure: tell the parent, then exit
        try:
            _send_line(3, {"fatal": _err(e), "isolation": setup.report})
        except Exception:
            pass
        code = 70
    os._exit(code)


# --------------------------------------------------------------------------------------
# fork server


def _warm(setup: Setup) -> None:
    import importlib

    failed = []
    for name in setup.cfg.get("warm_imports", DEFAULT_WARM_IMPORTS):
        try:
            importlib.import_module(name)
        except Exception:
            failed.append(name)
    if failed:
        setup.degrade(f"warm imports failed: {failed}")
    import random as _r

    _r.seed()  # reseeded again after fork by the random module itself


def zygote_main(cfg: dict, ctrl_fd: int) -> None:
    ctrl = socket.socket(fileno=ctrl_fd)
    setup = Setup(cfg)
    try:
        _warm(setup)
        setup.prepare(fresh=False)
    except BaseException as e:
        ctrl.send(json.dumps({"op": "fatal", "error": _err(e)}).encode())
        os._exit(1)
    ctrl.send(json.dumps({"op": "hello", "pid": os.getpid(), "isolation": setup.report}).encode())

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    children: dict[int, int] = {}  # pid -> spawn request id

    def send(obj: dict, fds: list[int] | None = None) -> None:
        data = json.dumps(obj).encode()
        if fds:
            socket.send_fds(ctrl, [data], fds)
        else:
            ctrl.send(data)

    def reap() -> None:
        while children:
            try:
                pid, status, ru = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rid = children.pop(pid, None)
            send({"op": "exited", "id": rid, "pid": pid, "status": status,
                  "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss})

    def spawn(req: dict) -> None:
        pipes = [os.pipe() for _ in range(4)]  # stdin, stdout, stderr, result
        pid = os.fork()
        if pid == 0:  # ---- the unit
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                ctrl.detach()
                if setup.lib is not None:
                    setup.lib.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                os.dup2(pipes[0][0], 0)
                os.dup2(pipes[1][1], 1)
                os.dup2(pipes[2][1], 2)
                os.dup2(pipes[3][1], 3)
                os.closerange(4, 1 << 16)
                os.setsid()
            except BaseException:
                os._exit(72)
            unit_main(setup, fresh=False, host_workdir=req.get("workdir"))
            os._exit(72)
        children[pid] = req["id"]
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = -1
        mine = [pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][0]]
        for fd in (pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]):
            os.close(fd)
        try:
            send({"op": "spawned", "id": req["id"], "pid": pid, "pidfd": pidfd >= 0},
                 mine + ([pidfd] if pidfd >= 0 else []))
        finally:
            for fd in mine + ([pidfd] if pidfd >= 0 else []):
                os.close(fd)

    try:
        while True:
            try:
                rl, _, _ = select.select([ctrl, wake_r], [], [])
            except InterruptedError:
                continue
            if wake_r in rl:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            reap()
            if ctrl in rl:
                msg = ctrl.recv(1 << 20)
                if not msg:
                    break
                req = json.loads(msg)
                if req.get("op") == "spawn":
                    try:
                        spawn(req)
                    except Exception as e:
                        send({"op": "error", "id": req.get("id"), "error": _err(e)})
                elif req.get("op") == "exit":
                    break
    finally:
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)


def main(argv: list[str]) -> None:
    mode, cfg = argv[1], json.loads(argv[2])
    if mode == "zygote":
        zygote_main(cfg, int(argv[3]))
    elif mode == "fresh":
        rfd = int(cfg.get("result_fd", 3))
        if rfd != 3:
            os.dup2(rfd, 3)
            os.close(rfd)
        os.closerange(4, 1 << 16)
        setup = Setup(cfg)
        if setup.lib is not None:
            try:
                setup.lib.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            except OSError:
                pass
        unit_main(setup, fresh=True, host_workdir=cfg["workdir"])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
