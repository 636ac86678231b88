"""The attacker's world: a kernel with the semantic FS on its real socket, a mount holding a granted folder
and a private folder beside it, a secret outside the mount, and agents that reach the kernel only through
the socket with their own process tokens.

Shared by the tests in tests/security and by ``bench/security`` (which runs the same corpus and counts).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from _access_kit import Rig, holder, open_rig

from aios import Agent, Capabilities
from aios.errors import AiosError, PermissionDenied

__all__ = [
    "OUTSIDE_SECRET",
    "PRIVATE_SECRET",
    "Attempt",
    "World",
    "adversaries",
    "build_world",
    "corpus",
    "open_world",
    "run_attempt",
    "snapshot",
]

PRIVATE_SECRET = "PRIVATE-7f3a91 the vault code"
OUTSIDE_SECRET = "OUTSIDE-c2d810 the launch code"
SECRETS = (PRIVATE_SECRET, OUTSIDE_SECRET)


@dataclass(frozen=True)
class World:
    root: Path  # everything lives below this
    mount: Path  # mounted as "m" by the user
    granted: Path  # the intruder's read+write grant, inside the mount
    private: Path  # beside it, inside the mount, not granted
    outside: Path  # outside the mount


def _world(root: Path) -> World:
    mount = root / "mount"
    return World(root, mount, mount / "granted", mount / "private", root / "outside")


def adversaries(root: Path) -> list[type[Agent]]:
    w = _world(root)
    return [
        # Granted read+write on one folder of the mount.
        holder("intruder", Capabilities(files_read=(str(w.granted),), files_write=(str(w.granted),))),
        # Granted read on the same folder only.
        holder("peeker", Capabilities(files_read=(str(w.granted),))),
        # Granted read on the whole mount, nothing to write.
        holder("auditor", Capabilities(files_read=(str(w.mount),))),
        # Granted nothing at all (no model either).
        holder("nobody", Capabilities(models=())),
        # Granted read+write on a folder outside every mount (where it may mount and unmount).
        holder("mounter", Capabilities(files_write=(str(root / "free"),))),
    ]


def build_world(root: Path) -> World:
    """The folders, the secrets, and every kind of link out of the grant (made by someone else)."""
    w = _world(root)
    (w.granted / "sub").mkdir(parents=True)
    w.private.mkdir()
    w.outside.mkdir()
    (w.outside / "dir").mkdir()
    (w.root / "free" / "racedir").mkdir(parents=True)
    (w.root / "free" / "racedir" / "secret.txt").write_text("harmless file in the free race folder\n")
    (w.granted / "racedir").mkdir()
    (w.granted / "racedir" / "secret.txt").write_text("harmless file in the race folder\n")
    (w.granted / "race.txt").write_text("harmless race file\n")
    (w.granted / "a.txt").write_text("alpha notes: apples and pears\n")
    (w.granted / "sub" / "b.txt").write_text("beta notes: bees and honey\n")
    (w.private / "secret.txt").write_text(PRIVATE_SECRET + "\n")
    (w.private / "diary.txt").write_text("diary: the orchard plans, kept private\n")
    (w.outside / "secret.txt").write_text(OUTSIDE_SECRET + "\n")
    (w.outside / "dir" / "secret.txt").write_text(OUTSIDE_SECRET + "\n")
    g = w.granted
    links = {
        "rel_private": "../private/secret.txt",
        "abs_private": str(w.private / "secret.txt"),
        "rel_outside": "../../outside/secret.txt",
        "abs_outside": str(w.outside / "secret.txt"),
        "dir_private": "../private",
        "dir_outside": str(w.outside),
        "dir_outside_rel": "../../outside/dir",
        "chain1": "chain2",
        "chain2": "../private/secret.txt",
        "chain_dir": "dir_outside",
        "magic": f"/proc/self/root{w.private}/secret.txt",
        "dotdot": "sub/../../private/secret.txt",
    }
    for name, target in links.items():
        (g / name).symlink_to(target)
    # Hard links to their own files, so the symlinked secrets above keep a single link (and only the
    # confined open, not the hard-link rule, stands between them and the intruder).
    (w.private / "hard.txt").write_text(PRIVATE_SECRET + " (hard)\n")
    (w.outside / "hard.txt").write_text(OUTSIDE_SECRET + " (hard)\n")
    os.link(w.private / "hard.txt", g / "hard_private")
    os.link(w.outside / "hard.txt", g / "hard_outside")
    return w


def snapshot(*folders: Path) -> dict[str, str]:
    """Every name below the folders with a hash of its content (links as their target): any change shows."""
    out: dict[str, str] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if path.is_symlink():
                    out[str(path)] = "link:" + os.readlink(path)
                elif path.is_file():
                    out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                else:
                    out[str(path)] = "dir"
    return out


@dataclass(frozen=True)
class Attempt:
    """One try: an agent calls a syscall; it must be refused (and audited ``deny``)."""

    agent: str
    syscall: str
    payload: dict[str, Any]
    #: False where the path is normalised lexically first (``link/../x`` is ``x`` in the grant): then a clear
    #: "no such file" is as good as a denial, and the test checks only that nothing leaked or changed.
    must_deny: bool = True

    def label(self) -> str:
        shown = {k: (Path(v).name if isinstance(v, str) and "/" in v else v) for k, v in self.payload.items()}
        return f"{self.agent}:{self.syscall}:{shown}"


_LINKS = ("rel_private", "abs_private", "rel_outside", "abs_outside", "chain1", "chain2", "magic", "dotdot")
_HARD = ("hard_private", "hard_outside")
_DIRS = ("dir_private", "dir_outside", "dir_outside_rel", "chain_dir")


def corpus(w: World) -> list[Attempt]:
    """Symlinks (file, folder, chains, relative, absolute, magic) and hard links out of the grant, ``..``
    through a linked folder, paths outside the grant, and every mutating call by read-only callers."""
    g = w.granted
    out: list[Attempt] = []
    for name in _LINKS + _HARD:
        p = str(g / name)
        out += [
            Attempt("intruder", "fs.cat", {"path": p}),
            Attempt("intruder", "fs.write", {"path": p, "text": "pwned"}),
            Attempt("intruder", "fs.delete", {"path": p}) if name in _HARD else None,
            Attempt("intruder", "fs.summarize", {"target": p}),
            Attempt("intruder", "fs.join", {"sources": [str(g / "a.txt"), p], "into": str(g / f"j_{name}.md")}),
            Attempt("peeker", "fs.cat", {"path": p}),
        ]
    for name in _DIRS:
        d = g / name
        out += [
            Attempt("intruder", "fs.cat", {"path": str(d / "secret.txt")}),
            Attempt("intruder", "fs.write", {"path": str(d / "planted.txt"), "text": "pwned"}),
            Attempt("intruder", "fs.write", {"path": str(d / "secret.txt"), "text": "pwned"}),
            Attempt("intruder", "fs.delete", {"path": str(d / "secret.txt")}),
            Attempt("intruder", "fs.mount", {"path": str(d), "name": f"x_{name}"}),
            Attempt("intruder", "fs.index", {"path": str(d)}),
            Attempt(
                "intruder", "fs.join", {"sources": [str(g / "a.txt"), str(d / "secret.txt")], "into": str(g / "jd.md")}
            ),
            Attempt(
                "intruder",
                "fs.join",
                {"sources": [str(g / "a.txt"), str(g / "sub" / "b.txt")], "into": str(d / "j.md")},
            ),
            Attempt("intruder", "fs.cat", {"path": str(d / ".." / "secret.txt")}, must_deny=False),
            Attempt("intruder", "fs.cat", {"path": str(d / ".." / "private" / "secret.txt")}, must_deny=False),
        ]
    # Plainly outside the grant: the private folder beside it, the outside, and ".." out of it.
    for p in (w.private / "secret.txt", w.outside / "secret.txt", g / ".." / "private" / "secret.txt"):
        out += [
            Attempt("intruder", "fs.cat", {"path": str(p)}),
            Attempt("intruder", "fs.write", {"path": str(p), "text": "pwned"}),
            Attempt("intruder", "fs.history", {"path": str(p)}),
            Attempt("intruder", "fs.diff", {"path": str(p)}),
            Attempt("intruder", "fs.rollback", {"path": str(p), "steps": 1}),
        ]
    out += [
        Attempt("intruder", "fs.mount", {"path": str(w.outside)}),
        Attempt("intruder", "fs.unmount", {"name": "m"}),
        Attempt("intruder", "fs.group", {"name": "stolen", "query": "vault code"}),
        Attempt("intruder", "fs.check", {"rebuild": True}),
        Attempt("intruder", "fs.ls", {"target": str(w.private)}),
        Attempt("nobody", "fs.search", {"query": "vault code"}),
        Attempt("nobody", "fs.ls", {}),
        Attempt("nobody", "fs.mounts", {}),
    ]
    out += read_only_mutations(w, "auditor") + read_only_mutations(w, "peeker")
    return [a for a in out if a is not None]


def _plan(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"plan": {"steps": list(steps)}, "confirmed": True}


def _step(op: str, **kw: str) -> dict[str, Any]:
    return {"op": op, "path": "", "query": "", "dest": "", "text": "", "steps": 1, **kw}


def read_only_mutations(w: World, agent: str) -> list[Attempt]:
    """Every mutating fs syscall and plan op, by a caller who may only read."""
    f = str(w.granted / "a.txt")
    plan, step = _plan, _step
    return [
        Attempt(agent, "fs.write", {"path": f, "text": "changed"}),
        Attempt(agent, "fs.delete", {"path": f}),
        Attempt(agent, "fs.rollback", {"path": f, "steps": 1}),
        Attempt(agent, "fs.mount", {"path": str(w.granted / "sub")}),
        Attempt(agent, "fs.unmount", {"name": "m"}),
        Attempt(agent, "fs.index", {"path": str(w.granted)}),
        Attempt(agent, "fs.group", {"name": "v", "query": "notes"}),
        Attempt(agent, "fs.group", {"name": "v", "clusters": 2, "mount": "m"}),
        Attempt(agent, "fs.join", {"sources": [f, str(w.granted / "sub" / "b.txt")], "into": str(w.granted / "j.md")}),
        Attempt(agent, "fs.check", {"rebuild": True}),
        Attempt(agent, "fs.run_plan", plan(step("write", path=f, text="changed"))),
        Attempt(agent, "fs.run_plan", plan(step("delete", path=f))),
        Attempt(agent, "fs.run_plan", plan(step("rollback", path=f))),
        Attempt(agent, "fs.run_plan", plan(step("move", path=f, dest=str(w.granted / "moved.txt")))),
        Attempt(
            agent,
            "fs.run_plan",
            plan(step("join", path=f"{f},{w.granted / 'sub' / 'b.txt'}", dest=str(w.granted / "j2.md"))),
        ),
        Attempt(agent, "fs.run_plan", plan(step("group", query="notes", dest="v2"))),
        Attempt(agent, "fs.run_plan", plan(step("ls"), step("write", path=f, text="changed"))),
    ]


async def run_attempt(callers: dict[str, Any], attempt: Attempt) -> tuple[str, str]:
    """(outcome, detail): "denied", "error" (refused otherwise, e.g. not found) or "allowed" with the result."""
    try:
        result = await callers[attempt.agent].call(attempt.syscall, **attempt.payload)
    except PermissionDenied as exc:
        return "denied", exc.message
    except AiosError as exc:
        return "error", exc.one_line()
    return "allowed", repr(result)


def leaked(text: str) -> bool:
    return any(secret in text for secret in SECRETS)


def open_world(tmp_path: Path) -> Any:
    """An async context manager: (rig, world, callers) with the mount indexed by the user."""
    from contextlib import asynccontextmanager

    import anyio

    @asynccontextmanager
    async def _open() -> Any:
        async with open_rig(tmp_path, "socket", agents=adversaries) as rig:
            world = build_world(rig.root)
            semfs = rig.kernel.services["semfs"]
            await anyio.to_thread.run_sync(lambda: semfs.index(world.mount, name="m"))
            names = ("intruder", "peeker", "auditor", "nobody", "mounter")
            callers = {name: (await rig.agent(name))[1] for name in names}
            yield rig, world, callers

    return _open()


def denied_rows(rig: Rig) -> list[dict[str, Any]]:
    return [r for r in rig.kernel.audit_rows(limit=100_000) if r["decision"] == "deny"]
