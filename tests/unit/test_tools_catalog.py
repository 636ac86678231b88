"""The catalog: namespaced entries, side-effect classes from annotations, capability views, search."""

from __future__ import annotations

import pytest
from mcp_types import Tool, ToolAnnotations

from aios.api import Capabilities
from tools.catalog import Catalog, ToolEntry


def tool(name: str, description: str, ann: ToolAnnotations | None = None, **props: str) -> Tool:
    schema = {"type": "object", "properties": {k: {"type": v} for k, v in props.items()}, "required": list(props)}
    return Tool(name=name, description=description, input_schema=schema, annotations=ann)


def make_catalog() -> Catalog:
    catalog = Catalog()
    specs = {
        "time": [
            tool(
                "get_current_time",
                "Get the current time in a specific IANA timezone",
                ToolAnnotations(read_only_hint=True),
                timezone="string",
            ),
            tool(
                "convert_time", "Convert a time between timezones", ToolAnnotations(read_only_hint=True), time="string"
            ),
        ],
        "git": [
            tool(
                "git_log",
                "Show the commit history of a repository",
                ToolAnnotations(read_only_hint=True),
                repo_path="string",
            ),
            tool("git_reset", "Unstage all staged changes", ToolAnnotations(destructive_hint=True), repo_path="string"),
            tool(
                "git_add",
                "Add file contents to the staging area",
                ToolAnnotations(destructive_hint=False),
                files="array",
            ),
        ],
        "files": [
            tool(
                "read_text_file",
                "Read the complete contents of a text file from the file system",
                ToolAnnotations(read_only_hint=True),
                path="string",
            ),
            tool(
                "write_file", "Create a new file or overwrite an existing file", None, path="string", content="string"
            ),
        ],
        "weather": [
            tool(
                "get_forecast",
                "Weather forecast for a city for the next days",
                ToolAnnotations(read_only_hint=True),
                city="string",
            )
        ],
    }
    for server, tools in specs.items():
        catalog.replace_server(server, [ToolEntry.from_mcp(server, t) for t in tools], [], [])
    return catalog


def test_entries_are_namespaced_with_side_effects() -> None:
    catalog = make_catalog()
    assert catalog.get("git.git_reset").side_effect == "destructive"
    assert catalog.get("git.git_add").side_effect == "write"
    assert catalog.get("files.write_file").side_effect == "destructive"  # unannotated: MCP's defaults
    assert catalog.get("time.get_current_time").retry_safe
    assert catalog.get("files.write_file").signature() == "files.write_file(path: string, content: string)"
    catalog.drop_server("git")
    assert not any(name.startswith("git.") for name in catalog.tools)


def test_views_follow_capabilities() -> None:
    catalog = make_catalog()
    caps = Capabilities(tools=("git.*", "time.get_*"), tools_ask=("files.write_file",), tools_deny=("git.git_reset",))
    assert [t.name for t in catalog.view(caps)] == [
        "files.write_file",
        "git.git_add",
        "git.git_log",
        "time.get_current_time",
    ]
    assert catalog.view(Capabilities()) == []  # deny by default


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("what is the current time in Tokyo", "time.get_current_time"),
        ("show recent commits in the repository history", "git.git_log"),
        ("read the file notes.txt", "files.read_text_file"),
        ("forecast for Paris", "weather.get_forecast"),
    ],
)
def test_keyword_search(query: str, best: str) -> None:
    ranked = make_catalog().search(query, semantic=False, limit=3)
    assert ranked[0][0].name == best


def test_search_respects_the_view_and_the_limit() -> None:
    caps = Capabilities(tools=("git.*",))
    ranked = make_catalog().search("what time is it", caps=caps, semantic=False, limit=2)
    assert all(e.server == "git" for e, _ in ranked) and len(ranked) <= 2


def test_semantic_search_finds_paraphrases() -> None:
    pytest.importorskip("onnxruntime")
    ranked = make_catalog().search("will it rain tomorrow", limit=3)
    assert ranked[0][0].name == "weather.get_forecast"
