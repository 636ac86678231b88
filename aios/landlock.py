"""Landlock over ctypes: the three syscalls, the ABI probe, and the rules an agent's worker confines itself with.

Landlock is an unprivileged Linux security module: a process builds a ruleset (which access rights it
*handles*, and for which file hierarchies or TCP ports it still *allows* them), then restricts itself to it,
irrevocably, for itself and every child. Everything handled and not allowed fails with ``EACCES``/``EPERM``.

What each ABI adds (all handled when present, so a newer kernel never confines less):
1 file-system rights; 2 ``REFER`` (links and renames across directories); 3 ``TRUNCATE``; 4 TCP bind and
connect; 5 ``IOCTL_DEV``; 6 scopes: signals and abstract Unix sockets stay inside the domain; 7 audit logging
flags (no new rights).

This module imports nothing from the other packages (the aios leaf) and has no third-party dependency.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from aios.errors import AiosError

__all__ = [
    "ACCESS_FS_READ",
    "LandlockUnavailable",
    "Rules",
    "abi_version",
    "confinement_level",
    "drop_capabilities",
    "restrict_self",
    "restrict_syscalls",
    "set_no_new_privs",
]

_SYSCALLS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446), "arm64": (444, 445, 446)}

_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2

# File-system access rights (include/uapi/linux/landlock.h).
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

#: Rights that apply to a regular file (a rule on a file may grant only these).
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
ACCESS_FS_READ = FS_READ_FILE | FS_READ_DIR

_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "arm64": 91}


class LandlockUnavailable(AiosError):
    """Landlock cannot confine here (not Linux, kernel older than 5.13, disabled, or an ABI too old)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _numbers() -> tuple[int, int, int] | None:
    if os.name != "posix" or platform.system() != "Linux":
        return None
    return _SYSCALLS.get(platform.machine())


def abi_version() -> int:
    """The running kernel's Landlock ABI (1..), or 0 where Landlock is missing or disabled."""
    numbers = _numbers()
    if numbers is None:
        return 0
    libc = _c()
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(
        ctypes.c_long(numbers[0]), None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
    )
    return max(0, int(version))


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def confinement_level(abi: int | None = None) -> str:
    """One line: what Landlock can enforce on this machine."""
    abi = abi_version() if abi is None else abi
    if abi <= 0:
        return "none: Landlock is not available (needs Linux >= 5.13 with the landlock LSM enabled)"
    parts = ["files"]
    if abi >= 4:
        parts.append("TCP bind/connect")
    if abi >= 6:
        parts.append("signals and abstract sockets scoped")
    return f"Landlock ABI {abi}: " + ", ".join(parts)


@dataclass(frozen=True)
class Rules:
    """What a confined process may still do. Paths that do not exist are skipped (a rule needs an fd)."""

    #: Read (files and directory listings).
    read: tuple[str, ...] = ()
    #: Read and execute (the interpreter, shared libraries).
    execute: tuple[str, ...] = ()
    #: Everything but execute (the agent's scratch dir, /dev/null).
    write: tuple[str, ...] = ()
    #: TCP: ``None`` denies every bind and connect; a tuple of ports allows connect to those; ``"any"`` does
    #: not restrict TCP (a network capability without port rules).
    tcp_connect: tuple[int, ...] | str | None = None
    #: Keep signals and abstract Unix sockets inside the domain (ABI 6).
    scoped: bool = True
    #: Fail (LandlockUnavailable) when the ABI cannot enforce one of these rules, instead of skipping it.
    require: frozenset[str] = field(default_factory=frozenset)


def _syscall(number: int, *args: object) -> int:
    libc = _c()
    libc.syscall.restype = ctypes.c_long
    result = int(libc.syscall(ctypes.c_long(number), *args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def set_no_new_privs() -> None:
    """``PR_SET_NO_NEW_PRIVS``: no execve may ever grant more privileges (setuid bits, file capabilities)."""
    libc = _c()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)):
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")


def drop_capabilities() -> None:
    """Drop every Linux capability (bounding, ambient, effective, permitted, inheritable).

    A kernel run as root would otherwise hand its workers ``CAP_SYS_RESOURCE`` (resource limits ignored),
    ``CAP_KILL`` and friends. A no-op in effect for an unprivileged user (it has none).
    """
    libc = _c()
    libc.prctl(
        _PR_CAP_AMBIENT,
        ctypes.c_ulong(_PR_CAP_AMBIENT_CLEAR_ALL),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    for cap in range(64):  # fails with EINVAL past the last capability, EPERM without CAP_SETPCAP: both fine
        libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    number = _SYS_CAPSET.get(platform.machine())
    if number is None:
        return
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two __user_cap_data_struct, all zero
    _syscall(number, header, data)


def _open_path(path: str) -> int | None:
    try:
        return os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None


def restrict_self(rules: Rules) -> int:
    """Confine this process (and its future children) to ``rules``, irrevocably; the ABI used.

    Sets ``PR_SET_NO_NEW_PRIVS`` first (Landlock requires it of an unprivileged process). Raises
    LandlockUnavailable when Landlock is missing or cannot enforce something in ``rules.require``
    (``"tcp"``, ``"scoped"``).
    """
    abi = abi_version()
    numbers = _numbers()
    if abi <= 0 or numbers is None:
        raise LandlockUnavailable(confinement_level(abi))
    create, add_rule, restrict = numbers
    if "tcp" in rules.require and abi < 4:
        raise LandlockUnavailable(f"Landlock ABI {abi} cannot restrict TCP (needs ABI 4)")
    if "scoped" in rules.require and abi < 6:
        raise LandlockUnavailable(f"Landlock ABI {abi} cannot scope signals (needs ABI 6)")
    handled_fs = _fs_rights(abi)
    attr = _RulesetAttr(handled_access_fs=handled_fs)
    size = 8
    if abi >= 4 and rules.tcp_connect != "any":
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6 and rules.scoped:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    elif abi >= 6:
        size = 24
    ruleset = _syscall(create, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        write = handled_fs & ~(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK)
        grants: list[tuple[Iterable[str], int]] = [
            (rules.read, ACCESS_FS_READ),
            (rules.execute, ACCESS_FS_READ | FS_EXECUTE),
            (rules.write, write),
        ]
        for paths, rights in grants:
            for path in paths:
                _add_path(add_rule, ruleset, path, rights & handled_fs)
        if attr.handled_access_net and isinstance(rules.tcp_connect, tuple):
            for port in rules.tcp_connect:
                net = _NetPortAttr(allowed_access=NET_CONNECT_TCP, port=port)
                _syscall(
                    add_rule, ctypes.c_int(ruleset), ctypes.c_int(_RULE_NET_PORT), ctypes.byref(net), ctypes.c_uint32(0)
                )
        set_no_new_privs()
        _syscall(restrict, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return abi


def _add_path(add_rule: int, ruleset: int, path: str, rights: int) -> None:
    fd = _open_path(path)
    if fd is None:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_RIGHTS
        beneath = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        try:
            _syscall(
                add_rule,
                ctypes.c_int(ruleset),
                ctypes.c_int(_RULE_PATH_BENEATH),
                ctypes.byref(beneath),
                ctypes.c_uint32(0),
            )
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            raise OSError(exc.errno, f"landlock_add_rule({path}): {exc.strerror}") from None
    finally:
        os.close(fd)


# -- seccomp: what Landlock has no rules for ------------------------------------------------------------

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7, "arm64": 0xC00000B7}
#: fork, vfork, clone, clone3, socket, io_uring_setup; aarch64 has no fork/vfork (0xFFFFFFFF never matches).
_NUMBERS = {
    "x86_64": {"fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "socket": 41, "io_uring_setup": 425},
    "aarch64": {
        "fork": 0xFFFFFFFF,
        "vfork": 0xFFFFFFFF,
        "clone": 220,
        "clone3": 435,
        "socket": 198,
        "io_uring_setup": 425,
    },
}
_NUMBERS["arm64"] = _NUMBERS["aarch64"]
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_CLONE_THREAD = 0x00010000
_AF_INET, _AF_INET6, _AF_PACKET, _SOCK_STREAM = 2, 10, 17, 1
_LD, _JEQ, _JGE, _JSET, _AND, _RET = 0x20, 0x15, 0x35, 0x45, 0x54, 0x06


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _assemble(program: list[tuple[str, int, int | str, int | str, int]]) -> list[tuple[int, int, int, int]]:
    """(label, code, jt, jf, k) with jump targets as labels (or 0: the next instruction) -> BPF."""
    where = {label: i for i, (label, *_rest) in enumerate(program) if label}

    def offset(i: int, target: int | str) -> int:
        return 0 if target == 0 else where[str(target)] - i - 1

    return [(code, offset(i, jt), offset(i, jf), k) for i, (_, code, jt, jf, k) in enumerate(program)]


def restrict_syscalls(*, processes: bool, datagrams: bool) -> None:
    """A seccomp filter for what Landlock has no rules for (sets ``PR_SET_NO_NEW_PRIVS``).

    ``processes``: ``fork``, ``vfork`` and a ``clone`` that is not a thread fail with ``EAGAIN`` (``clone3``
    says ``ENOSYS``, so the C library falls back to ``clone`` for threads) — for a worker run as root, which
    Linux never holds to ``RLIMIT_NPROC``. ``datagrams``: IPv4/IPv6 sockets other than TCP (UDP, raw, SCTP),
    packet sockets and io_uring (which can open sockets) fail with ``EACCES`` — for an agent without the
    network capability (Landlock restricts TCP only). Other ABIs' entry points (32-bit, x32) are refused.
    """
    machine = platform.machine()
    if machine not in _AUDIT_ARCH or platform.system() != "Linux":
        raise LandlockUnavailable(f"no seccomp filter for {platform.system()}/{machine}")
    nr = _NUMBERS[machine]
    eperm, eacces = _RET_ERRNO | errno.EPERM, _RET_ERRNO | errno.EACCES
    program: list[tuple[str, int, int | str, int | str, int]] = [
        ("", _LD, 0, 0, 4),  # arch
        ("", _JEQ, 0, "eperm", _AUDIT_ARCH[machine]),
        ("", _LD, 0, 0, 0),  # syscall number
        ("", _JGE, "eperm", 0, 0x40000000),  # x32
    ]
    if processes:
        program += [
            ("", _JEQ, "eagain", 0, nr["fork"]),
            ("", _JEQ, "eagain", 0, nr["vfork"]),
            ("", _JEQ, "enosys", 0, nr["clone3"]),
            ("", _JEQ, "clone", 0, nr["clone"]),
        ]
    if datagrams:
        program += [
            ("", _JEQ, "eacces", 0, nr["io_uring_setup"]),
            ("", _JEQ, "socket", 0, nr["socket"]),
        ]
    program += [
        ("allow", _RET, 0, 0, _RET_ALLOW),
        ("clone", _LD, 0, 0, 16),  # args[0]: clone flags (low word)
        ("", _JSET, "allowed", "eagain", _CLONE_THREAD),
        ("socket", _LD, 0, 0, 16),  # args[0]: domain
        ("", _JEQ, "inet", 0, _AF_INET),
        ("", _JEQ, "inet", 0, _AF_INET6),
        ("", _JEQ, "eacces", "allowed", _AF_PACKET),
        ("inet", _LD, 0, 0, 24),  # args[1]: type, flags in the high bits
        ("", _AND, 0, 0, 0xF),
        ("", _JEQ, "allowed", "eacces", _SOCK_STREAM),  # TCP is Landlock's to refuse
        ("allowed", _RET, 0, 0, _RET_ALLOW),  # (classic BPF jumps only forward)
        ("eagain", _RET, 0, 0, _RET_ERRNO | errno.EAGAIN),
        ("enosys", _RET, 0, 0, _RET_ERRNO | errno.ENOSYS),
        ("eacces", _RET, 0, 0, eacces),
        ("eperm", _RET, 0, 0, eperm),
    ]
    code = _assemble(program)
    filters = (_SockFilter * len(code))(*[_SockFilter(*insn) for insn in code])
    fprog = _SockFprog(len(code), filters)
    set_no_new_privs()
    libc = _c()
    if libc.prctl(
        _PR_SET_SECCOMP, ctypes.c_ulong(_SECCOMP_MODE_FILTER), ctypes.byref(fprog), ctypes.c_ulong(0), ctypes.c_ulong(0)
    ):
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP): {os.strerror(err)}")
