"""Typed configuration read from ``config.toml``.

Every key has a default, so an absent file is a valid configuration. Unknown keys and wrong types are
rejected with one line naming the key and the file, never silently ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from aios import paths
from aios.api import Priority
from aios.errors import ConfigError

__all__ = [
    "AccessConfig",
    "AgentGrant",
    "Config",
    "KernelConfig",
    "LLMConfig",
    "LLMServer",
    "PluginApproval",
    "PluginsConfig",
    "PoolConfig",
    "SemfsConfig",
    "TUIConfig",
    "dump_toml",
    "load_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LLMServer(_Section):
    """One OpenAI-compatible server of the engine pool (`[[llm.servers]]`, for backend = 'pool')."""

    url: str = Field(description="Its base URL, e.g. http://10.0.0.5:8000 (a trailing /v1 is accepted).")
    model: str = Field("", description="Model name to ask it for; empty = its first model.")
    api_key_env: str = Field("", description="Environment variable holding its API key; empty = [llm]'s.")
    max_concurrency: int = Field(4, ge=1, le=1024, description="Requests in flight on it at once.")
    llama_extensions: bool = Field(True, description="Send llama.cpp's fields (grammar, repeat_penalty...).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class PoolConfig(_Section):
    """How the engine pool routes over `[[llm.servers]]` (`[llm.pool]`; see docs/scale-out.md)."""

    affinity_slack: int = Field(
        2, ge=0, description="Keep a process (or prompt prefix) on its server while that has at most this many "
        "more requests in flight than the least loaded one.",
    )  # fmt: skip
    health_path: str = Field("/v1/models", description="Probed for health (any 2xx answer is healthy).")
    health_interval_s: float = Field(5.0, gt=0, description="Seconds between probes of a healthy server.")
    health_timeout_s: float = Field(5.0, gt=0, description="How long a probe may take.")
    backoff_initial_s: float = Field(0.5, gt=0, description="First wait before probing a server found dead.")
    backoff_max_s: float = Field(30.0, gt=0, description="Longest wait between probes of a dead server.")
    max_attempts: int = Field(4, ge=1, le=64, description="Servers one request may be tried on.")
    wait_for_server_s: float = Field(
        60.0, ge=0, description="How long a request waits while no server is up before it fails."
    )


class LLMConfig(_Section):
    """The shared local model and how it is run."""

    model: str = Field("", description="Model name from `aios models list`; empty means the default model.")
    backend: Literal["llama", "openai", "pool", "fake"] = Field("llama", description="LLM backend used by the kernel.")
    servers: list[LLMServer] = Field(
        default_factory=list, description="The engine pool's servers (backend = 'pool'), one [[llm.servers]] each."
    )
    pool: PoolConfig = Field(default_factory=PoolConfig)
    openai_url: str = Field("", description="OpenAI-compatible server for backend = 'openai' (llama-server, vLLM).")
    openai_model: str = Field("", description="Model name to ask that server for; empty = its first model.")
    openai_api_key_env: str = Field("AIOS_OPENAI_API_KEY", description="Environment variable holding its API key.")
    policy: Literal["priority", "fifo"] = Field("priority", description="Scheduling policy of the engine.")
    n_ctx: int = Field(2048, ge=256, le=131072, description="Context window of each agent's sequence, in tokens.")
    n_seq_max: int = Field(8, ge=1, le=64, description="Sequences (agent contexts) resident in the model at once.")
    max_batch: int = Field(8, ge=1, le=64, description="Most sequences decoded together in one step.")
    swap_ram_mb: int = Field(512, ge=0, description="RAM for swapped-out contexts; beyond it they go to files.")
    n_threads: int = Field(
        0, ge=0, le=256, description="CPU threads; 0 = one per core, fewer while other processes load the CPU."
    )
    n_batch: int = Field(512, ge=8, le=8192, description="Tokens per decode step (decodes plus prefill chunks).")
    max_tokens: int = Field(512, ge=1, le=32768, description="Default cap on generated tokens per reply.")
    temperature: float = Field(0.2, ge=0.0, le=5.0, description="Default sampling temperature; 0 is greedy.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Default nucleus sampling threshold.")
    flash_attn: bool = Field(True, description="Flash attention in llama.cpp (faster on long contexts).")
    repeat_penalty: float = Field(1.1, ge=1.0, le=3.0, description="Penalty on tokens already in the sequence.")


class SemfsConfig(_Section):
    """The semantic file system's index."""

    chroma_url: str = Field(
        "", description="A chroma server for the vectors (`chroma run`), e.g. http://127.0.0.1:8000; empty = local."
    )

    @field_validator("chroma_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be empty or start with http:// or https://")
        return value


class KernelConfig(_Section):
    """Process table and agent defaults."""

    default_priority: Priority = "normal"
    agent_token_budget: int = Field(
        200_000, ge=0, description="Default LLM tokens (prompt + generated) an agent may use; 0 = unlimited."
    )
    inprocess_builtin: bool = Field(
        False, description="Run the built-in agents inside the kernel process instead of confined workers."
    )
    unconfined: bool = Field(
        False, description="Run plugin agents in their own process without Landlock (like `--unconfined`)."
    )
    worker_memory_mb: int = Field(2048, ge=0, description="Address-space limit of an agent's process (0 = none).")
    worker_cpu_s: int = Field(3600, ge=0, description="CPU seconds an agent's process may use (0 = no limit).")
    worker_nofile: int = Field(256, ge=0, description="Open files an agent's process may hold (0 = no limit).")
    worker_nproc: int = Field(16, ge=0, description="Processes/threads an agent's process may add (0 = no limit).")
    worker_kill_grace_s: float = Field(2.0, ge=0, description="Seconds between SIGTERM and SIGKILL on kill.")
    worker_start_timeout_s: float = Field(15.0, gt=0, description="Seconds a new agent process has to say hello.")


class TUIConfig(_Section):
    """Look of the terminal UI."""

    theme: str = "textual-dark"
    default_agent: str = "chat"


class AgentGrant(_Section):
    """The most the user lets one agent have; each given key narrows its manifest (never widens it)."""

    tools: list[str] | None = None
    tools_ask: list[str] = Field(default_factory=list, description="Tools to ask about even if granted.")
    tools_deny: list[str] = Field(default_factory=list, description="Tools always refused.")
    files_read: list[str] | None = None
    files_write: list[str] | None = None
    memory_read: list[str] | None = None
    memory_write: list[str] | None = None
    models: list[str] | None = None
    max_children: int | None = Field(None, ge=0)
    network: bool | None = None
    llm_token_budget: int | None = Field(None, ge=0)
    max_priority: Priority | None = None
    tool_arg_paths: list[str] = Field(
        default_factory=list, description="Tools whose path arguments must stay inside the file grants."
    )


class AccessConfig(_Section):
    """Access control: approvals and per-agent narrowing (`[access.agents.NAME]`)."""

    approval_timeout_s: float = Field(
        300.0, ge=0, description="How long an approval waits for an attached front end; 0 = until answered."
    )
    headless_timeout_s: float = Field(
        10.0, ge=0, description="With no front end attached, an approval is denied after this many seconds."
    )
    max_request_kb: int = Field(1024, ge=1, description="Largest request body the socket accepts, in KiB.")
    agents: dict[str, AgentGrant] = Field(default_factory=dict, description="Narrowing per agent name.")
    user: AgentGrant = Field(
        default_factory=AgentGrant,
        description="What you, at the terminal, may do through aios (default: everything); e.g. files_write.",
    )


class PluginApproval(_Section):
    """A third-party agent the user approved (`[plugins.approved.NAME]`, written by aios): what it declared."""

    plugin: str = Field("", description="The plugin that provides the agent.")
    version: str = Field("", description="The plugin's version when approved.")
    digest: str = Field(description="sha256 of the agent's declared capabilities; a change asks again.")
    approved_at: float = Field(0.0, description="When (Unix time).")


class PluginsConfig(_Section):
    """Third-party plugins: the agents whose declared capabilities you approved on their first run."""

    approved: dict[str, PluginApproval] = Field(default_factory=dict, description="Approved agents by name.")


class Config(_Section):
    llm: LLMConfig = Field(default_factory=LLMConfig)
    kernel: KernelConfig = Field(default_factory=KernelConfig)
    tui: TUIConfig = Field(default_factory=TUIConfig)
    semfs: SemfsConfig = Field(default_factory=SemfsConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)


def _describe(error: ErrorDetails) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        section = error["loc"][:-1]
        model: type[BaseModel] = Config
        for part in section:
            if isinstance(part, int):  # an item of a list of tables, e.g. llm.servers.0
                continue
            annotation = model.model_fields[str(part)].annotation
            if get_origin(annotation) is list:
                annotation = get_args(annotation)[0]
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                break
            model = annotation
        valid = ", ".join(model.model_fields)
        return f"unknown key '{key}' (valid keys here: {valid})"
    return f"'{key}': {error['msg']} (got {error.get('input')!r})"


def parse_config(data: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f"; and {more} more problem(s)" if more else ""
        raise ConfigError(f"{source}: {_describe(first)}{suffix}", "fix the file or run `aios config show`") from None


def load_config(path: Path | None = None) -> Config:
    """Read and validate the config file; a missing file gives the defaults."""
    path = path or paths.config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a file", "remove it or put a config file there") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}", "check its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex()
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{bad} at offset {exc.start})", "save it as UTF-8 or delete it"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", "fix the file or delete it to use defaults") from None
    return parse_config(data, str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # e.g. one of [llm] servers, as an inline table
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(config: Config) -> str:
    """Render the whole configuration (defaults included) as TOML."""
    lines: list[str] = []
    for section, values in config.model_dump().items():
        lines.append(f"[{section}]")
        tables = {k: v for k, v in values.items() if isinstance(v, dict)}
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items() if k not in tables and v is not None)
        lines.append("")
        for key, table in tables.items():
            if table and not all(isinstance(v, dict) for v in table.values()):  # e.g. [access.user]
                lines.append(f"[{section}.{key}]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None)
                lines.append("")
                continue
            for name, sub in table.items():  # e.g. [access.agents.chat]
                lines.append(f"[{section}.{key}.{_toml_value(name)}]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in sub.items() if v is not None)
                lines.append("")
    return "\n".join(lines)
