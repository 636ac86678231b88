"""The user's standing decisions: "always allow / always deny" answers, and config narrowing of manifests.

"Always" answers persist in ``policy.json`` in the config dir (written atomically, mode 0600), keyed by agent
name and resource (``tool:git.git_push``). They only settle an ``ask``: a resource the manifest does not
grant stays denied whatever the file says, except what an agent asked for at run time (``proc.request``,
``PolicyStore.recall``): that is what the user answered "always" to. ``aios policy list|revoke`` shows and
removes them.

Narrowing: ``[access.agents.NAME]`` in config.toml caps what agent NAME's manifest may have.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from aios import paths
from aios.api import Capabilities
from aios.config import AccessConfig, AgentGrant
from aios.errors import ConfigError, UsageError
from kernel.access import TOP, attenuate

__all__ = ["PolicyRule", "PolicyStore", "grant_caps", "narrow", "policy_path"]

log = logging.getLogger(__name__)

Remembered = Literal["allow", "deny"]


def policy_path() -> Path:
    return paths.config_dir() / "policy.json"


@dataclass(frozen=True)
class PolicyRule:
    id: int
    agent: str
    resource: str
    decision: Remembered
    created_at: float
    #: The syscall that asked, for the listing.
    syscall: str = ""


class PolicyStore:
    """The persisted "always" decisions. Reads are from memory; every change rewrites the file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or policy_path()
        self._lock = threading.Lock()
        self._rules: dict[tuple[str, str], PolicyRule] = {}
        self._next_id = 1
        self.reload()

    def reload(self) -> None:
        if not self.path.exists():
            self._rules = {}
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            rules = [PolicyRule(**r) for r in data.get("rules", [])]
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{self.path}: not a valid policy file: {exc}", "fix it or delete it") from None
        self._rules = {(r.agent, r.resource): r for r in rules if r.decision in ("allow", "deny")}
        self._next_id = max((r.id for r in rules), default=0) + 1

    def lookup(self, agent: str, resource: str) -> Remembered | None:
        rule = self._rules.get((agent, resource))
        return None if rule is None else rule.decision

    def recall(self, agent: str, kind: str, target: str, *, write: bool = False) -> tuple[Remembered, str] | None:
        """The remembered answer to an agent's runtime request (``proc.request``) for ``kind:target``, and what
        it was given for: a tool by its name, a file by any remembered folder that holds it (the folder is what
        the user agreed to; a write needs a remembered write; any remembered deny over it wins). None: ask."""
        if kind != "file":
            decision = self.lookup(agent, f"{kind}:{target}" + (" (write)" if write else ""))
            return None if decision is None else (decision, target)
        allowed: str | None = None
        for (who, resource), rule in self._rules.items():
            if who != agent or not resource.startswith("file:"):
                continue
            root = resource[len("file:") :]
            wrote = root.endswith(" (write)")
            root = root.removesuffix(" (write)")
            if not (target == root or target.startswith(root.rstrip("/") + "/")):
                continue
            if rule.decision == "deny" and (write or not wrote):
                return "deny", root
            if rule.decision == "allow" and (wrote or not write):
                allowed = root
        return None if allowed is None else ("allow", allowed)

    def rules(self, agent: str | None = None) -> list[PolicyRule]:
        return sorted((r for r in self._rules.values() if agent in (None, r.agent)), key=lambda r: r.id)

    def remember(self, agent: str, resource: str, decision: Remembered, *, syscall: str = "") -> PolicyRule:
        with self._lock:
            rule = PolicyRule(self._next_id, agent, resource, decision, time.time(), syscall)
            self._next_id += 1
            self._rules[(agent, resource)] = rule
            self._save()
        log.info("policy: always %s %s for agent %s", decision, resource, agent)
        return rule

    def revoke(self, rule_id: int) -> PolicyRule:
        with self._lock:
            for key, rule in self._rules.items():
                if rule.id == rule_id:
                    del self._rules[key]
                    self._save()
                    return rule
        raise UsageError(f"no policy rule with id {rule_id}", "see `aios policy list`")

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"rules": [asdict(r) for r in self.rules()]}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".policy-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(body)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def grant_caps(grant: AgentGrant) -> Capabilities:
    """A config grant as a capability set: keys it leaves out grant everything (they narrow nothing)."""

    def pick(value: list[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
        return default if value is None else tuple(value)

    return Capabilities(
        llm_token_budget=grant.llm_token_budget if grant.llm_token_budget is not None else TOP.llm_token_budget,
        max_priority=grant.max_priority or TOP.max_priority,
        models=pick(grant.models, TOP.models),
        tools=pick(grant.tools, TOP.tools),
        tools_ask=tuple(grant.tools_ask),
        tools_deny=tuple(grant.tools_deny),
        files_read=pick(grant.files_read, TOP.files_read),
        files_write=pick(grant.files_write, TOP.files_write),
        memory_read=pick(grant.memory_read, TOP.memory_read),
        memory_write=pick(grant.memory_write, TOP.memory_write),
        max_children=TOP.max_children if grant.max_children is None else grant.max_children,
        network=TOP.network if grant.network is None else grant.network,
        tool_arg_paths=tuple(grant.tool_arg_paths),
    )


def narrow(agent: str, caps: Capabilities, config: AccessConfig) -> Capabilities:
    """``caps`` (a manifest's) as the user's config allows it: ``[access.agents.<agent>]`` then ``"*"``."""
    for key in (agent, "*"):
        grant = config.agents.get(key)
        if grant is not None:
            caps = attenuate(caps, grant_caps(grant))
    return caps
