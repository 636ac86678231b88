"""``docs/syscalls.md``, generated from the syscall table (the one source of the interface).

    python -m kernel.syscall_docs > docs/syscalls.md

``tests/unit/test_syscall_docs.py`` fails when the committed page and the table disagree.
"""

from __future__ import annotations

import json
from typing import Any

from kernel.syscall_table import load_syscalls
from kernel.syscalls import SYSCALLS

__all__ = ["render"]

_HEADER = """# Syscalls

Generated from the syscall table by `python -m kernel.syscall_docs` (do not edit by hand). Every syscall goes
through `Kernel.dispatch`: the request is validated against the model below (unknown fields are errors), each
resource it touches is checked against the caller's capabilities (allow, ask the user, or deny) and audited,
then it runs. Agents call them with `ctx.call(NAME, **fields)` (or the `ctx.fs`, `ctx.tools`... facades), other
programs over the socket with `POST /v1/call {"syscall": NAME, "payload": {...}}` and their process token; the
person at the terminal through `kernel.connect` as the `user` principal. `llm.chat` streams and has its own
endpoint (`POST /v1/chat`). What each call needs is in [access-control.md](access-control.md).
"""


def _type(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " | ".join(_type(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list[{_type(prop.get('items', {}))}]"
    return str(kind)


def _limits(prop: dict[str, Any]) -> str:
    keys = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minLength", "maxLength", "minItems")
    found = [f"{k} {prop[k]}" for k in (*keys, "maxItems", "pattern") if k in prop]
    for option in prop.get("anyOf", []):
        found += [f"{k} {option[k]}" for k in (*keys, "maxItems", "pattern") if k in option]
    return ", ".join(found)


def _section(name: str) -> str:
    spec = SYSCALLS[name]
    doc = (spec.handler.__doc__ or spec.description or "").strip().split("\n\n")[0]
    doc = " ".join(line.strip() for line in doc.splitlines())
    schema = spec.request.model_json_schema()
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    lines = [f"### `{name}`", "", doc or "(no description)", ""]
    if not props:
        lines += ["No fields.", ""]
        return "\n".join(lines)
    lines += ["| field | type | default | limits |", "| --- | --- | --- | --- |"]
    for field, prop in props.items():
        default = "required" if field in required else json.dumps(prop.get("default"))
        limits, kind = _limits(prop).replace("|", "\\|"), _type(prop).replace("|", "\\|")
        lines.append(f"| `{field}` | {kind} | {default} | {limits} |")
    lines.append("")
    return "\n".join(lines)


def render() -> str:
    load_syscalls()
    names = sorted(n for n in SYSCALLS if not n.startswith("proc.test_"))
    families: dict[str, list[str]] = {}
    for name in names:
        families.setdefault(name.split(".", 1)[0], []).append(name)
    out = [_HEADER]
    for family, members in families.items():
        out.append(f"## `{family}.*`\n")
        out.extend(_section(n) for n in members)
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render(), end="")
