"""Config narrowing of manifests (`[access.agents.NAME]`), task trees owned by their agent, the policy file,
and the guard's decisions for process targets."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import anyio
import pytest
from _access_kit import open_rig

from aios.config import AgentGrant, Config, dump_toml, parse_config
from aios.errors import ConfigError, PermissionDenied, UsageError
from kernel.policy import PolicyStore, policy_path

pytestmark = pytest.mark.anyio


async def test_config_narrows_a_manifest_and_never_widens_it(tmp_path: Path) -> None:
    config = Config()
    config.access.agents["alpha"] = AgentGrant(tools=["t.ok", "x.*"], tools_ask=["t.ok"], network=True, files_write=[])
    config.access.agents["*"] = AgentGrant(max_children=1)
    config.access.headless_timeout_s = 0
    with anyio.fail_after(20):
        async with open_rig(tmp_path, config=config) as rig:
            _, alpha = await rig.agent("alpha")
            caps = rig.kernel._procs[alpha.pid].caps
            assert "x.*" not in caps.tools and caps.tools_ask == ("t.ok",)  # x.* was never in the manifest
            assert not caps.network and caps.files_write == () and caps.max_children == 1
            with pytest.raises(PermissionDenied):  # t.fileread: granted by the manifest, not by the config
                await alpha.call("proc.test_touch", kind="tool", target="t.fileread")
            with pytest.raises(PermissionDenied, match="headless"):  # the config made t.ok an ask
                await alpha.call("proc.test_touch", kind="tool", target="t.ok")
            with pytest.raises(PermissionDenied):
                await alpha.call("proc.test_touch", kind="file", target=str(rig.root / "granted/rw/x"), write=True)
            assert (await alpha.call("proc.test_read", path="note.txt")) == "granted note"  # reads are kept
            _, beta = await rig.agent("greedy")
            assert rig.kernel._procs[beta.pid].caps.max_children == 1


def test_access_config_parses_dumps_and_rejects_bad_keys() -> None:
    config = parse_config(
        {"access": {"headless_timeout_s": 2, "agents": {"chat": {"tools": ["fs.*"], "network": False}}}}, "t"
    )
    again = parse_config(tomllib.loads(dump_toml(config)), "dump")
    assert again == config
    assert again.access.agents["chat"].tools == ["fs.*"]
    with pytest.raises(ConfigError, match="tool"):
        parse_config({"access": {"agents": {"chat": {"tool": ["x"]}}}}, "t")
    with pytest.raises(ConfigError, match="headless_timeout_s"):
        parse_config({"access": {"headless_timeout_s": -1}}, "t")


async def test_task_trees_belong_to_their_agent(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path) as rig:
            if "memory" not in rig.kernel.services:
                pytest.skip("the memory service (task trees) is not available")
            _, alpha = await rig.agent("alpha")
            _, beta = await rig.agent("beta")
            _, reader = await rig.agent("reader")
            tree = (await alpha.call("task.create", title="plan"))["id"]
            assert (await alpha.call("task.get", tree=tree))["tree"]["owner"] == "alpha"
            with pytest.raises(PermissionDenied, match="belongs to agent alpha"):
                await beta.call("task.get", tree=tree)
            with pytest.raises(PermissionDenied, match="belongs to agent alpha"):
                await beta.call("task.add", tree=tree, title="sneaky")
            # A memory grant on agent:alpha lets another agent read alpha's trees, not change them.
            assert (await reader.call("task.get", tree=tree))["tree"]["id"] == tree
            with pytest.raises(PermissionDenied):
                await reader.call("task.add", tree=tree, title="sneaky")


def test_policy_file_round_trip_and_bad_files(tmp_path: Path) -> None:
    store = PolicyStore()
    rule = store.remember("chat", "tool:git.push", "allow", syscall="tool.call")
    assert oct(policy_path().stat().st_mode & 0o777) == "0o600"
    again = PolicyStore()
    assert again.lookup("chat", "tool:git.push") == "allow"
    assert again.lookup("other", "tool:git.push") is None
    assert again.revoke(rule.id).resource == "tool:git.push"
    assert PolicyStore().rules() == []
    with pytest.raises(UsageError, match="no policy rule"):
        again.revoke(rule.id)
    policy_path().write_text("{nope")
    with pytest.raises(ConfigError, match="not a valid policy file"):
        PolicyStore()
    policy_path().write_text(json.dumps({"rules": [{"id": 1}]}))
    with pytest.raises(ConfigError):
        PolicyStore()


@pytest.mark.parametrize(
    ("tool", "write", "args", "expected"),
    [
        ("files.read", False, {"path": "{g}/note.txt"}, "allow"),
        ("files.read", False, {"path": "/etc/passwd"}, "deny"),
        ("files.read", False, {"path": "note.txt"}, "deny"),  # relative: resolved by the server, so refused
        ("files.read", False, {"path": "{g}/../secret.txt"}, "deny"),
        ("files.read", False, {"path": 7}, "deny"),
        ("files.read", False, {"paths": ["{g}/note.txt", "/etc/passwd"]}, "deny"),
        ("files.read", False, {"Directory": "/"}, "deny"),
        ("files.read", False, {"query": "/etc/passwd"}, "allow"),  # not a path argument
        ("files.write", True, {"path": "{g}/note.txt"}, "deny"),  # a side effect needs the write grant
        ("files.write", True, {"path": "{g}/rw/new.txt"}, "allow"),
        ("files.copy", True, {"source": "{g}/note.txt", "destination": "/tmp/out"}, "deny"),
        ("other.read", False, {"path": "/etc/passwd"}, "allow"),  # no argument constraint on other.*
    ],
)
async def test_tool_path_arguments_stay_inside_the_file_grants(
    tmp_path: Path, tool: str, write: bool, args: dict[str, object], expected: str
) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path) as rig:
            granted = str(rig.root / "granted")
            filled = {k: (v.replace("{g}", granted) if isinstance(v, str) else v) for k, v in args.items()}
            filled = {
                k: ([p.replace("{g}", granted) for p in v] if isinstance(v, list) else v) for k, v in filled.items()
            }
            _, filer = await rig.agent("filer")
            call = filer.call("proc.test_touch", kind="tool", target=tool, write=write, args=filled)
            if expected == "allow":
                assert (await call)["touched"] == f"tool:{tool}"
            else:
                with pytest.raises(PermissionDenied, match="argument"):
                    await call
