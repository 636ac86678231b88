"""Agents in their own confined OS processes: a hostile plugin tries to escape, one way per case, and fails.

The plugin (``hostile_plugin/aios_hostile.py``) is installed the way a user installs one: copied into the
config dir's ``plugins/`` folder, found by the real ``PluginManager``. Each case runs one attempt in a fresh
worker (Landlock, no capabilities, rlimits) and then checks that the kernel still serves another agent.
``test_unconfined_reaches_the_file`` runs the same plugin with ``unconfined`` (and one in-process) and sees
it succeed, so the confined cases can fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aios import landlock, paths
from aios.config import Config
from aios.errors import UsageError
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.kernel import Kernel
from kernel.worker_host import scratch_dir

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(landlock.abi_version() < 6, reason="needs Landlock ABI 6 (signals scoped)"),
]

PLUGIN = Path(__file__).parent / "hostile_plugin" / "aios_hostile.py"


@pytest.fixture
async def kernel(aios_home: Path) -> AsyncIterator[Kernel]:
    plugins = paths.plugins_dir()
    plugins.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGIN, plugins / PLUGIN.name)
    manager = PluginManager(load_entry_points=False)
    assert not manager.failures, manager.failures
    manager.approve("aios_hostile")  # the user approved what it declares (first run asks: test_plugins_approval)
    async with open_kernel(Config(), runtime=FakeBackend(), plugins=manager) as k:
        yield k


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text("the secret\n")
    return path


async def attack(kernel: Kernel, name: str, arg: Any = None, *, unconfined: bool = False) -> dict[str, Any]:
    """Run one attempt in a fresh hostile worker; its final process-table entry (``outcome`` parsed)."""
    with anyio.fail_after(60):
        pid = await kernel.spawn("hostile", json.dumps({"attack": name, "arg": arg}), unconfined=unconfined)
        info = await kernel.wait(pid)
    info["outcome"] = json.loads(info["result"]) if info["result"] else None
    return info


async def assert_contained(kernel: Kernel, info: dict[str, Any]) -> None:
    """The attempt failed inside the agent (or the agent died alone), and the kernel serves another agent."""
    assert info["confinement"].startswith("landlock-"), info
    if info["outcome"] is not None:
        assert info["outcome"]["escaped"] is False, info["outcome"]
    else:
        assert info["state"] == "failed" and info["error"], info
    with anyio.fail_after(60):
        pid = await kernel.spawn("calm", "still there?")
        calm = await kernel.wait(pid)
    assert calm["state"] == "exited", calm
    assert json.loads(calm["result"])["reply"] == "echo: still there?"


async def test_read_outside_grants(kernel: Kernel, secret: Path) -> None:
    await assert_contained(kernel, await attack(kernel, "read", str(secret)))


async def test_write_outside_grants(kernel: Kernel, secret: Path) -> None:
    await assert_contained(kernel, await attack(kernel, "write", str(secret)))
    assert secret.read_text() == "the secret\n"


@pytest.mark.parametrize("name", ["aios.db", "aios.db-wal"])
async def test_kernel_sqlite_files(kernel: Kernel, name: str) -> None:
    kernel.flush_writes()
    target = paths.db_path().parent / name
    assert target.exists()
    await assert_contained(kernel, await attack(kernel, "read", str(target)))
    await assert_contained(kernel, await attack(kernel, "write", str(target)))


async def test_another_agents_scratch_dir(kernel: Kernel) -> None:
    other = scratch_dir(kernel, 999)
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("another agent's notes")
    await assert_contained(kernel, await attack(kernel, "read", str(other / "notes.txt")))
    await assert_contained(kernel, await attack(kernel, "listdir", str(other)))
    await assert_contained(kernel, await attack(kernel, "rename_out", str(other)))


@pytest.mark.parametrize("what", ["mem", "environ"])
async def test_kernel_proc_files(kernel: Kernel, what: str) -> None:
    await assert_contained(kernel, await attack(kernel, "open", f"/proc/{os.getpid()}/{what}"))


async def test_kernel_environment_and_fds_are_not_inherited(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_OPENAI_API_KEY", "sk-kernel-secret")
    await assert_contained(kernel, await attack(kernel, "environ", "sk-kernel-secret"))
    await assert_contained(kernel, await attack(kernel, "inherited_fds"))


async def test_symlink_in_scratch(kernel: Kernel, secret: Path) -> None:
    await assert_contained(kernel, await attack(kernel, "symlink", str(secret)))


async def test_hardlink_in_scratch(kernel: Kernel, secret: Path) -> None:
    await assert_contained(kernel, await attack(kernel, "hardlink", str(secret)))


@pytest.mark.parametrize("argv", [["/bin/sh", "-c", "true"], ["/usr/bin/env"]])
async def test_subprocess_outside_allowed_binaries(kernel: Kernel, argv: list[str]) -> None:
    await assert_contained(kernel, await attack(kernel, "exec", argv))


async def test_os_system(kernel: Kernel) -> None:
    await assert_contained(kernel, await attack(kernel, "system", "true"))


async def test_tcp_connect_to_local_port(kernel: Kernel) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        await assert_contained(kernel, await attack(kernel, "tcp_connect", port))


@pytest.mark.parametrize(("name", "arg"), [("raw_socket", "raw"), ("raw_socket", "packet"), ("io_uring", None)])
async def test_other_sockets(kernel: Kernel, name: str, arg: Any) -> None:
    await assert_contained(kernel, await attack(kernel, name, arg))


async def test_udp_send_to_local_port(kernel: Kernel) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        await assert_contained(kernel, await attack(kernel, "udp_send", receiver.getsockname()[1]))
        with pytest.raises(BlockingIOError):
            receiver.recv(64)


async def test_network_capability_opens_tcp(kernel: Kernel) -> None:
    """With ``network`` granted, the same connect goes through (files stay closed)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with anyio.fail_after(60):
            pid = await kernel.spawn("networked", json.dumps({"attack": "tcp_connect", "arg": port}))
            info = await kernel.wait(pid)
    assert json.loads(info["result"])["escaped"] is True and info["confinement"].startswith("landlock-")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, anyio.fail_after(60):
        receiver.bind(("127.0.0.1", 0))
        pid = await kernel.spawn("networked", json.dumps({"attack": "udp_send", "arg": receiver.getsockname()[1]}))
        assert json.loads((await kernel.wait(pid))["result"])["escaped"] is True
        assert receiver.recv(64) == b"exfiltrated"
    with anyio.fail_after(60):
        pid = await kernel.spawn("networked", json.dumps({"attack": "read", "arg": "/etc/passwd"}))
        info = await kernel.wait(pid)
    assert json.loads(info["result"])["escaped"] is False


@pytest.mark.parametrize("sig", [15, 9])
async def test_kill_the_kernel(kernel: Kernel, sig: int) -> None:
    await assert_contained(kernel, await attack(kernel, "kill", {"pid": os.getpid(), "sig": sig}))


async def test_memory_past_its_limit(kernel: Kernel) -> None:
    info = await attack(kernel, "memory", 1024)  # its limit is 512 MB (the plugin's `limits`)
    assert "MemoryError" in info["outcome"]["detail"]
    await assert_contained(kernel, info)


async def test_busy_loop_past_its_cpu_limit(kernel: Kernel) -> None:
    info = await attack(kernel, "cpu", 120)  # its limit is 2 CPU seconds
    assert info["state"] == "failed" and "CPU time limit" in info["error"], info
    rows = kernel.audit_rows(denied_only=True)
    assert any(r["syscall"] == "proc.exit" and "CPU time limit" in (r["reason"] or "") for r in rows)
    await assert_contained(kernel, info)


async def test_fork_loop(kernel: Kernel) -> None:
    info = await attack(kernel, "fork_loop", 500)  # bounded by its process limit
    await assert_contained(kernel, info)


async def test_child_gets_its_own_confined_process(kernel: Kernel) -> None:
    with anyio.fail_after(60):
        pid = await kernel.spawn("parent", "from the child")
        info = await kernel.wait(pid)
    out = json.loads(info["result"])
    child = out["child"]
    assert child["ppid"] == pid and child["state"] == "exited"
    assert child["confinement"].startswith("landlock-") and child["os_pid"] not in (None, out["os_pid"], os.getpid())
    assert json.loads(child["result"])["reply"] == "echo: from the child"


async def test_unconfined_reaches_the_file(kernel: Kernel, secret: Path) -> None:
    """The same attempt with ``unconfined``: the file is read, so the confined cases can fail."""
    info = await attack(kernel, "read", str(secret), unconfined=True)
    assert info["confinement"] == "process" and info["os_pid"]
    assert info["outcome"]["escaped"] is True, info["outcome"]
    kernel.config.kernel.unconfined = True  # [kernel] unconfined = true: the same
    info = await attack(kernel, "read", str(secret))
    assert info["outcome"]["escaped"] is True and info["confinement"] == "process"


async def test_process_row_and_kill(kernel: Kernel) -> None:
    """A looping agent shows its OS pid, RSS and CPU time; suspend stops the OS process; kill ends it."""
    pid = await kernel.spawn("hostile", json.dumps({"attack": "cpu", "arg": 1.5}))
    with anyio.fail_after(30):
        while not (row := kernel.info(pid))["rss_kb"] or row["confinement"] == "starting":
            await anyio.sleep(0.02)
    assert row["os_pid"] and row["os_pid"] != os.getpid() and row["confinement"].startswith("landlock-")
    await kernel.suspend(pid)
    with anyio.fail_after(10):
        while Path(f"/proc/{row['os_pid']}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            await anyio.sleep(0.02)
    await kernel.kill(pid)
    with anyio.fail_after(30):
        info = await kernel.wait(pid)
    assert info["exit_code"] == 143 and info["error"] == "killed"
    assert not Path(f"/proc/{row['os_pid']}").exists()


@pytest.mark.parametrize(("how", "reason"), [("exit", "worker exited with code 3"), ("segv", "killed by SIGSEGV")])
async def test_crash_dies_alone_with_its_reason(kernel: Kernel, how: str, reason: str) -> None:
    info = await attack(kernel, "crash", how)
    assert info["state"] == "failed" and info["error"].startswith(reason), info
    await assert_contained(kernel, info)


async def test_kill_of_an_agent_ignoring_sigterm(kernel: Kernel) -> None:
    """SIGTERM ignored: SIGKILL after the grace period."""
    kernel.config.kernel.worker_kill_grace_s = 0.5
    pid = await kernel.spawn("hostile", json.dumps({"attack": "ignore_sigterm", "arg": 120}))
    with anyio.fail_after(30):
        while not (scratch_dir(kernel, pid) / "ignoring-sigterm").exists():
            await anyio.sleep(0.02)
        os_pid = kernel.info(pid)["os_pid"]
        await kernel.kill(pid)
        info = await kernel.wait(pid)
    assert info["exit_code"] == 143 and info["error"] == "killed"
    assert kernel.process(pid).os_exit == -9
    assert not Path(f"/proc/{os_pid}").exists()


async def test_plugin_refuses_to_start_without_landlock(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(landlock, "abi_version", lambda: 0)
    with pytest.raises(UsageError, match="cannot be confined here"):
        await kernel.spawn("calm", "hi")
    pid = await kernel.spawn("calm", "hi", unconfined=True)
    assert (await kernel.wait(pid))["state"] == "exited"


ROGUES = {
    "silent": "import time; time.sleep(60)",
    "garbage": "import os, sys, time; os.write(int(sys.argv[1]), b'GET / HTTP/1.1\\r\\n\\r\\n' * 4); time.sleep(60)",
    "forged": (
        "import socket, sys, time\n"
        "from kernel.frames import recv_frame_blocking, send_frame_blocking\n"
        "s = socket.socket(fileno=int(sys.argv[1])); recv_frame_blocking(s)\n"
        "send_frame_blocking(s, {'op': 'hello', 'token': 'aios_0000.forged', 'confinement': 'none'})\n"
        "time.sleep(60)"
    ),
    "bad_op": (
        "import socket, sys, time\n"
        "from kernel.frames import recv_frame_blocking, send_frame_blocking\n"
        "s = socket.socket(fileno=int(sys.argv[1])); start = recv_frame_blocking(s)\n"
        "send_frame_blocking(s, {'op': 'hello', 'token': start['token'], 'confinement': 'none'})\n"
        "recv_frame_blocking(s); send_frame_blocking(s, {'op': 'become', 'pid': 0})\n"
        "time.sleep(60)"
    ),
}


@pytest.mark.parametrize("rogue", sorted(ROGUES))
async def test_rogue_worker_is_refused_killed_and_reported(
    kernel: Kernel, rogue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that never says hello, sends garbage, forges its token or asks for a made-up op."""
    from kernel import worker_host

    script = tmp_path / f"{rogue}.py"
    script.write_text(ROGUES[rogue])
    monkeypatch.setattr(worker_host, "WORKER_ARGS", (str(script),))
    kernel.config.kernel.worker_start_timeout_s = 1.0
    with anyio.fail_after(30):
        pid = await kernel.spawn("calm", "hi")
        while kernel.info(pid)["os_pid"] is None:
            await anyio.sleep(0.01)
        os_pid = kernel.info(pid)["os_pid"]
        info = await kernel.wait(pid)
    assert info["state"] == "failed" and info["error"].startswith("refused: "), info
    assert not Path(f"/proc/{os_pid}").exists() or "Z" in Path(f"/proc/{os_pid}/stat").read_text().split(")")[1][:3]
    rows = kernel.audit_rows(denied_only=True)
    assert any(r["syscall"] == "proc.worker" and r["pid"] == pid for r in rows)
    monkeypatch.setattr(worker_host, "WORKER_ARGS", ("-m", "kernel.worker"))
    kernel.config.kernel.worker_start_timeout_s = 15.0
    pid = await kernel.spawn("calm", "still there?")
    assert (await kernel.wait(pid))["state"] == "exited"
