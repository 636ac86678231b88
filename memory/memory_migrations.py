"""Schema of the task-memory tree and agent memory (issue 8): its own migration set, ``aios.memory``.

Append new functions; never edit one that has shipped.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["migrations"]

migrations = Migrations("aios.memory")


def _run(db: Database, script: str) -> None:
    """Run ``script`` statement by statement inside the migration's transaction (``executescript`` would
    commit first and break atomicity). Triggers are split on their ``END;``."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if line.strip().startswith("--") or not line.strip():
            continue
        current.append(line)
        text = "\n".join(current).strip()
        in_trigger = text.upper().startswith("CREATE TRIGGER")
        if (in_trigger and text.upper().endswith("END;")) or (not in_trigger and text.endswith(";")):
            statements.append(text)
            current = []
    for statement in statements:
        db.execute(statement)


@migrations()
def m001_task_tree(db: Database) -> None:
    _run(
        db,
        """
        CREATE TABLE task_trees (
            id INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            pid INTEGER,
            title TEXT NOT NULL,
            root_id INTEGER,
            active_id INTEGER,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX task_trees_owner ON task_trees(owner);
        CREATE INDEX task_trees_pid ON task_trees(pid);
        CREATE TABLE task_nodes (
            id INTEGER PRIMARY KEY,
            tree_id INTEGER NOT NULL REFERENCES task_trees(id),
            parent_id INTEGER REFERENCES task_nodes(id),
            position INTEGER NOT NULL DEFAULT 0,
            title TEXT NOT NULL,
            status TEXT NOT NULL,
            input TEXT NOT NULL DEFAULT '',
            output TEXT NOT NULL DEFAULT '',
            version INTEGER NOT NULL,
            needs_recheck INTEGER NOT NULL DEFAULT 0,
            superseded_by INTEGER REFERENCES task_nodes(id),
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX task_nodes_tree ON task_nodes(tree_id);
        CREATE INDEX task_nodes_parent ON task_nodes(parent_id);
        CREATE TABLE task_node_versions (
            node_id INTEGER NOT NULL REFERENCES task_nodes(id),
            version INTEGER NOT NULL,
            title TEXT NOT NULL,
            status TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            actor TEXT NOT NULL,
            change TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (node_id, version)
        );
        CREATE TABLE task_edges (
            node_id INTEGER NOT NULL REFERENCES task_nodes(id),
            depends_on INTEGER NOT NULL REFERENCES task_nodes(id),
            created_at REAL NOT NULL,
            PRIMARY KEY (node_id, depends_on)
        );
        CREATE INDEX task_edges_dep ON task_edges(depends_on);
        """,
    )


@migrations()
def m002_agent_memory(db: Database) -> None:
    _run(
        db,
        """
        CREATE TABLE mem_core (
            namespace TEXT NOT NULL,
            label TEXT NOT NULL,
            value TEXT NOT NULL,
            char_limit INTEGER NOT NULL,
            source_kind TEXT NOT NULL,
            source_ref TEXT NOT NULL DEFAULT '',
            actor TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (namespace, label)
        );
        -- Core edits wait here until the agent's turn ends, so a turn's prompt prefix stays cached.
        CREATE TABLE mem_core_pending (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            label TEXT NOT NULL,
            value TEXT,
            char_limit INTEGER NOT NULL,
            source_kind TEXT NOT NULL,
            source_ref TEXT NOT NULL DEFAULT '',
            actor TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE mem_archival (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            text TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            source_kind TEXT NOT NULL,
            source_ref TEXT NOT NULL DEFAULT '',
            actor TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX mem_archival_ns ON mem_archival(namespace, created_at);
        CREATE VIRTUAL TABLE mem_archival_fts USING fts5(text, content='mem_archival', content_rowid='id');
        CREATE TRIGGER mem_archival_ai AFTER INSERT ON mem_archival BEGIN
            INSERT INTO mem_archival_fts(rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TRIGGER mem_archival_ad AFTER DELETE ON mem_archival BEGIN
            INSERT INTO mem_archival_fts(mem_archival_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END;
        -- Recall: a full-text index over the kernel's message log, filled by the memory service (rowid = message
        -- id; no triggers on the kernel's table, so its write path stays as it is).
        CREATE VIRTUAL TABLE mem_recall_fts USING fts5(content);
        CREATE TABLE mem_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        -- Vectors are a derived index (chroma); this outbox lists items whose vectors are still to be written
        -- or deleted, processed idempotently.
        CREATE TABLE mem_vector_outbox (
            id INTEGER PRIMARY KEY,
            item TEXT NOT NULL,
            op TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        """,
    )


@migrations()
def m003_memory_outbox_triggers(db: Database) -> None:
    _run(
        db,
        """
        ALTER TABLE mem_core_pending ADD COLUMN pid INTEGER;
        CREATE TRIGGER mem_archival_vec_ai AFTER INSERT ON mem_archival BEGIN
            INSERT INTO mem_vector_outbox(item, op, created_at) VALUES ('a' || new.id, 'upsert', new.created_at);
        END;
        CREATE TRIGGER mem_archival_vec_ad AFTER DELETE ON mem_archival BEGIN
            INSERT INTO mem_vector_outbox(item, op, created_at) VALUES ('a' || old.id, 'delete', unixepoch());
        END;
        """,
    )
