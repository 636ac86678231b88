"""The local socket: tokens decide identity (spoofing attempts fail), bad input gets clear errors while the
connection and the kernel keep serving, and a second front end sees the same process table."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _access_kit import Rig, open_rig

from aios.client import AuthError, SocketClient
from aios.config import Config
from aios.errors import BudgetExceeded, PermissionDenied, UsageError
from kernel.events import ProcessExited, ProcessSpawned

pytestmark = pytest.mark.anyio


def raw(rig: Rig, token: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(rig.socket)), base_url="http://aios", headers=headers)


async def test_socket_and_token_file_are_private(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, "socket") as rig:
            assert rig.socket is not None
            assert stat.S_IMODE(rig.socket.stat().st_mode) == 0o600
            token_file = rig.socket.parent / "frontend.token"
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            assert token_file.read_text() == rig.frontend_token
        assert not rig.socket.exists()
        assert not token_file.exists()


async def test_a_token_is_one_agent_and_nothing_more(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, "socket") as rig:
            front = await rig.frontend()
            a, a_token = await front.spawn_with_token("alpha")
            b, b_token = await front.spawn_with_token("beta")
            async with SocketClient(rig.socket, a_token) as alpha, SocketClient(rig.socket, b_token) as beta:
                assert alpha.pid == a and beta.pid == b
                assert (await alpha.call("proc.self"))["agent"] == "alpha"
                # A cannot act on B, nor use the front end's endpoints.
                with pytest.raises(PermissionDenied, match="not a child"):
                    await alpha.call("proc.kill", pid=b)
                with pytest.raises(PermissionDenied, match="front-end token"):
                    await alpha.kill(b)
                with pytest.raises(PermissionDenied, match="front-end token"):
                    await alpha.spawn("greedy")
                with pytest.raises(PermissionDenied, match="front-end token"):
                    alpha.ps()
                with pytest.raises(PermissionDenied, match="front-end token"):  # nor answer its own approvals
                    await alpha.approve("any", "allow_always")
                with pytest.raises(PermissionDenied, match="front-end token"):
                    alpha.request("POST", "/v1/policy/revoke", {"id": 1})
                # Nor raise its own capabilities by spawning a wider copy of something.
                child = (await alpha.call("proc.spawn", agent="greedy", caps={"network": True, "tools": ["*"]}))["pid"]
                caps = rig.kernel._procs[child].caps
                assert not caps.network and caps.tools == ("t.ok", "t.*read")
                # Beta has no children to grant.
                with pytest.raises(PermissionDenied):
                    await beta.call("proc.spawn", agent="beta")
                assert rig.kernel.info(b)["state"] != "exited"

            # After its process ends, a token is dead.
            await front.close_input(a)
            await front.wait(a)
            async with SocketClient(rig.socket, b_token) as still:
                assert (await still.call("proc.self"))["pid"] == b
            with raw(rig, a_token) as dead:
                response = dead.post("/v1/call", json={"syscall": "proc.self"})
            assert response.status_code == 401
            assert response.json()["error"]["message"] == "invalid or expired token"
            rows = rig.kernel.audit_rows(denied_only=True)
    assert any(r["syscall"] == "socket:/v1/call" and r["reason"] == "invalid or expired token" for r in rows)
    # The cross-agent kill was audited as alpha, with alpha's token id.
    kill = next(r for r in rows if r["syscall"] == "proc.kill")
    assert (kill["pid"], kill["agent"]) == (a, "alpha") and kill["token_id"]


@pytest.mark.parametrize(
    "token",
    [None, "", "aios_deadbeef.notasecret", "aios_frontend.guess", "Basic abc", "aios_.", "x" * 5000],
)
async def test_missing_and_forged_tokens_are_refused(tmp_path: Path, token: str | None) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, "socket") as rig:
            _, alpha = await rig.agent("alpha")
            real = alpha.token
            forged_secret = real[: real.index(".") + 1] + "wrong-secret"
            with raw(rig, token) as client:
                for path in ("/v1/ps", "/v1/hello"):
                    response = client.get(path)
                    assert response.status_code == 401, path
                    assert response.json()["error"]["type"] == "TokenError"
                response = client.post("/v1/call", json={"syscall": "proc.self"})
                assert response.status_code == 401
            with raw(rig, forged_secret) as client:
                assert client.post("/v1/call", json={"syscall": "proc.self"}).status_code == 401
            with pytest.raises(AuthError):
                async with SocketClient(rig.socket, forged_secret):
                    pass
            rows = [r for r in rig.kernel.audit_rows(denied_only=True) if r["syscall"].startswith("socket:")]
    assert len(rows) >= 4


async def test_bad_input_gets_clear_errors_and_the_connection_survives(tmp_path: Path) -> None:
    config = Config()
    config.access.max_request_kb = 4
    with anyio.fail_after(20):
        async with open_rig(tmp_path, "socket", config) as rig:
            _, alpha = await rig.agent("alpha")
            cases: list[tuple[Any, int, str]] = [
                (b"{not json", 400, "malformed JSON"),
                (b"[1, 2]", 400, "invalid request"),
                (json.dumps({"syscall": "proc.nope"}).encode(), 400, "unknown syscall 'proc.nope'"),
                (json.dumps({"syscall": 7}).encode(), 400, "syscall"),
                (json.dumps({"syscall": "proc.self", "payload": "x"}).encode(), 400, "payload"),
                (json.dumps({"syscall": "proc.test_touch", "payload": {"kind": 1}}).encode(), 400, "kind"),
                (json.dumps({"syscall": "proc.self", "extra": 1}).encode(), 400, "extra"),
                (b"\xff\xfe", 400, "malformed JSON"),
                (json.dumps({"syscall": "proc.self", "payload": {"x": "y" * 10_000}}).encode(), 413, "over the limit"),
            ]
            with raw(rig, alpha.token) as client:
                for body, status, message in cases:
                    response = client.post("/v1/call", content=body, headers={"content-type": "application/json"})
                    assert response.status_code == status, body[:40]
                    assert message in response.json()["error"]["message"], body[:40]
                    assert response.headers.get("connection") != "close", body[:40]  # kept alive
                    # The same connection keeps working, and the kernel keeps serving.
                    ok = client.post("/v1/call", json={"syscall": "proc.self"})
                    assert ok.status_code == 200 and ok.json()["result"]["agent"] == "alpha"
                unknown = client.get("/v1/nowhere")
                assert unknown.status_code == 400 and "no endpoint" in unknown.json()["error"]["message"]
            rows = rig.kernel.audit_rows(denied_only=True)
    reasons = " | ".join(r["reason"] for r in rows)
    assert "malformed JSON" in reasons and "over the limit" in reasons and "unknown syscall" in reasons
    assert all(r["agent"] == "alpha" for r in rows)


async def test_a_second_front_end_sees_the_same_process_table(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, "socket") as rig:
            first = await rig.frontend()
            second = await rig.frontend()
            events = second.subscribe(approver=True)
            while not rig.kernel.events.has_approver():  # the event stream is connected
                await anyio.sleep(0.01)
            pid = await first.spawn("alpha", interactive=True)
            assert [p["pid"] for p in second.ps()] == [p["pid"] for p in rig.kernel.ps()] == [pid]
            await first.suspend(pid)
            assert second.ps()[0]["state"] == "suspended"
            await first.resume(pid)
            await first.nice(pid, "background")
            assert second.ps()[0]["priority"] == "background"
            await first.kill(pid)
            info = await second.wait(pid)
            assert info["exit_code"] == 143
            seen = []
            async for event in events:
                seen.append(event)
                if isinstance(event, ProcessExited):
                    break
            assert isinstance(seen[0], ProcessSpawned) and seen[0].pid == pid
            with pytest.raises(UsageError, match="priority"):
                await first.nice(pid, "urgent")
            assert second.agents()["alpha"] == ""
            rows = [r for r in rig.kernel.audit_rows() if r["token_id"] == "frontend"]
    actions = [(r["syscall"], r["resource"]) for r in rows if r["decision"] == "allow"]
    assert [(r["syscall"], r["reason"][:16]) for r in rows if r["decision"] == "deny"] == [
        ("socket:/v1/nice", "invalid request:")
    ]
    assert actions == [
        ("socket:/v1/spawn", "alpha"),
        ("socket:/v1/suspend", str(pid)),
        ("socket:/v1/resume", str(pid)),
        ("socket:/v1/nice", str(pid)),
        ("socket:/v1/kill", str(pid)),
        ("socket:/v1/wait", str(pid)),
    ]


async def test_chat_streams_over_the_socket_and_budget_is_enforced(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, "socket") as rig:
            pid, alpha = await rig.agent("alpha")
            text = "".join([p async for p in alpha.chat([{"role": "user", "content": "hi there"}])])
            assert text == "echo: hi there"
            assert rig.kernel.info(pid)["completion_tokens"] == 3
            rig.kernel._procs[pid].accounting.prompt_tokens = 10_000  # its 1000-token budget is spent
            with pytest.raises(BudgetExceeded, match="budget"):
                async for _ in alpha.chat([{"role": "user", "content": "more"}]):
                    pass
            with pytest.raises(UsageError, match="messages"):
                async for _ in alpha.chat([]):
                    pass
            rows = [r for r in rig.kernel.audit_rows() if r["syscall"] == "llm.chat"]
    assert [r["decision"] for r in rows] == ["allow", "deny"]


async def test_an_approver_that_disconnects_stops_counting(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, "socket") as rig:
            async with SocketClient(rig.socket, rig.frontend_token) as front:
                await front.open_events(approver=True)
                assert rig.kernel.events.has_approver()
            # The server notices the closed connection and drops the subscription: back to headless.
            while rig.kernel.events.has_approver():
                await anyio.sleep(0.02)
            with pytest.raises(AuthError):
                SocketClient(rig.socket, "").ps()


async def test_an_external_agent_lives_until_it_exits(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, "socket") as rig:
            front = await rig.frontend()
            pid, token = await front.spawn_with_token("external")
            async with SocketClient(rig.socket, token) as me:
                assert me.pid == pid
                assert await me.call("proc.test_touch", kind="tool", target="t.ok") == {"touched": "tool:t.ok"}
                assert front.ps()[0]["state"] == "waiting_input"  # held for the other program
                assert await me.call("proc.exit") == {"pid": pid}
                info = await front.wait(pid)
                assert (info["state"], info["exit_code"]) == ("exited", 0)
                with pytest.raises(AuthError):
                    await me.call("proc.self")
