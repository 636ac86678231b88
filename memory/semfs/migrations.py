"""The semantic file system's own tables (migration set ``aios.semfs``). Append; never edit a shipped one."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["migrations"]

migrations = Migrations("aios.semfs")


@migrations()
def m001_semfs(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE semfs_mounts (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            path TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            reconciled_at REAL
        );
        CREATE TABLE semfs_files (
            id INTEGER PRIMARY KEY,
            mount_id INTEGER NOT NULL REFERENCES semfs_mounts(id) ON DELETE CASCADE,
            relpath TEXT NOT NULL,
            kind TEXT NOT NULL,
            ext TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            sha256 TEXT,
            indexed_at REAL NOT NULL,
            skipped TEXT,
            UNIQUE (mount_id, relpath)
        );
        CREATE TABLE semfs_chunks (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES semfs_files(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            chunk_hash TEXT NOT NULL,
            heading TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL,
            start_line INTEGER NOT NULL,
            end_line INTEGER NOT NULL,
            embedded INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX semfs_chunks_file ON semfs_chunks(file_id);
        CREATE INDEX semfs_chunks_pending ON semfs_chunks(embedded) WHERE embedded = 0;
        CREATE VIRTUAL TABLE semfs_fts USING fts5(text, heading, path, tokenize = 'porter unicode61');
        -- Work for the background embedder: 'upsert' or 'delete' one chunk's vector in chroma.
        CREATE TABLE semfs_outbox (
            id INTEGER PRIMARY KEY,
            op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
            chunk_id INTEGER NOT NULL,
            created_at REAL NOT NULL
        );
        -- Version content, content-addressed (sha256 of the raw bytes), zlib-compressed.
        CREATE TABLE semfs_blobs (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            data BLOB NOT NULL
        );
        -- Every observed change to a file; sha256 NULL records a deletion.
        CREATE TABLE semfs_versions (
            id INTEGER PRIMARY KEY,
            mount_id INTEGER NOT NULL REFERENCES semfs_mounts(id) ON DELETE CASCADE,
            relpath TEXT NOT NULL,
            sha256 TEXT REFERENCES semfs_blobs(sha256),
            size INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            source TEXT NOT NULL
        );
        CREATE INDEX semfs_versions_path ON semfs_versions(mount_id, relpath, id);
        CREATE TABLE semfs_views (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            query TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE semfs_view_files (
            view TEXT NOT NULL REFERENCES semfs_views(name) ON DELETE CASCADE,
            file_id INTEGER NOT NULL REFERENCES semfs_files(id) ON DELETE CASCADE,
            grp TEXT NOT NULL DEFAULT '',
            score REAL,
            PRIMARY KEY (view, file_id)
        );
        -- LLM summaries and comparisons keyed by the hash of what was summarised.
        CREATE TABLE semfs_llm_cache (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        """
    )


@migrations()
def m002_version_archive(db: Database) -> None:
    # Unmounting keeps a mount's version history here, by absolute path; mounting the folder again brings it back.
    db.executescript(
        """
        CREATE TABLE semfs_version_archive (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            sha256 TEXT REFERENCES semfs_blobs(sha256),
            size INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            source TEXT NOT NULL,
            archived_at REAL NOT NULL
        );
        CREATE INDEX semfs_version_archive_path ON semfs_version_archive(path, id);
        """
    )
