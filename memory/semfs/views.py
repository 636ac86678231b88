"""Group-by views and join.

A view is a named set of files: the results of a query (keyword, semantic or hybrid), or one mount split into
k semantic clusters (k-means over each file's mean chunk vector, each group labelled by its distinctive
words). ``aios fs ls @VIEW`` lists it; search can be narrowed to it. Join writes a new file from several.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import numpy as np

from aios.errors import UsageError
from memory.semfs.core import SemFS
from memory.semfs.search import Filters, Mode

__all__ = ["cluster_view", "concat_files", "drop_view", "query_view", "views"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_STOP = frozenset(
    "the a an and or of to in on for with is are was be this that it as by at from not but can you your we our "
    "they their if then else def return self none true false import class use using into all any each".split()
)


def _check_name(name: str) -> str:
    name = name.removeprefix("@")
    if not _NAME.match(name):
        raise UsageError(f"view name '{name}' must be letters, digits, '-', '_' or '.' (at most 64)")
    return name


def _save(fs: SemFS, name: str, kind: str, query: str, members: list[tuple[int, str, float]]) -> dict[str, Any]:
    with fs.db.tx() as conn:
        conn.execute("DELETE FROM semfs_views WHERE name = ?", (name,))
        conn.execute(
            "INSERT INTO semfs_views (name, kind, query, created_at) VALUES (?, ?, ?, ?)",
            (name, kind, query, time.time()),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO semfs_view_files (view, file_id, grp, score) VALUES (?, ?, ?, ?)",
            [(name, fid, grp, score) for fid, grp, score in members],
        )
    groups = Counter(g for _, g, _ in members)
    return {"view": name, "kind": kind, "files": len(members), "groups": dict(groups)}


def query_view(
    fs: SemFS, query: str, name: str, *, mode: Mode = "hybrid", k: int = 20, filters: Filters | None = None
) -> dict[str, Any]:
    """A view of the files best matching ``query``."""
    name = _check_name(name)
    hits = fs.search(query, k=k, filters=filters, mode=mode)
    if not hits:
        raise UsageError(f"no files match '{query}'; view '@{name}' not created")
    ids = {
        (r["mount"], r["relpath"]): r["id"]
        for r in fs.db.q(
            "SELECT f.id, f.relpath, m.name AS mount FROM semfs_files f JOIN semfs_mounts m ON m.id = f.mount_id"
        )
    }
    members = [(ids[(h.mount, h.relpath)], "", h.score) for h in hits if (h.mount, h.relpath) in ids]
    return _save(fs, name, mode, query, members)


def _kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = [x[rng.integers(len(x))]]
    for _ in range(1, k):  # k-means++ seeding
        d = np.min([1.0 - x @ c for c in centers], axis=0).clip(0)
        p = d / d.sum() if d.sum() > 0 else np.full(len(x), 1 / len(x))
        centers.append(x[rng.choice(len(x), p=p)])
    c = np.stack(centers)
    labels = np.zeros(len(x), dtype=int)
    for _ in range(iters):
        new = np.argmax(x @ c.T, axis=1)
        if _ > 0 and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                m = members.mean(axis=0)
                c[j] = m / max(np.linalg.norm(m), 1e-9)
    return labels


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z][a-z0-9]{2,}", text.lower()) if w not in _STOP]


def cluster_view(fs: SemFS, name: str, k: int, *, mount: str | None = None) -> dict[str, Any]:
    """Split a mount's (or every mount's) files into ``k`` semantic groups."""
    name = _check_name(name)
    if not 2 <= k <= 50:
        raise UsageError("--clusters must be between 2 and 50")
    where, params = "f.skipped IS NULL", []
    if mount:
        where += " AND f.mount_id = ?"
        params.append(fs.db.mount_by_name(mount).id)
    rows = fs.db.q(
        f"SELECT c.id, c.file_id, c.text, c.embedded FROM semfs_chunks c JOIN semfs_files f "
        f"ON f.id = c.file_id WHERE {where}",
        params,
    )
    missing = sum(1 for r in rows if not r["embedded"])
    if missing:
        fs.embed_pending()
    vectors = fs.vectors.vectors_for([r["id"] for r in rows])
    by_file: dict[int, list[np.ndarray]] = {}
    text: dict[int, list[str]] = {}
    for r in rows:
        if r["id"] in vectors:
            by_file.setdefault(r["file_id"], []).append(vectors[r["id"]])
            text.setdefault(r["file_id"], []).append(r["text"])
    if len(by_file) < k:
        raise UsageError(f"only {len(by_file)} file(s) with vectors; cannot make {k} groups")
    file_ids = sorted(by_file)
    x = np.stack([np.mean(by_file[f], axis=0) for f in file_ids])
    x /= np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-9, None)
    labels = _kmeans(x, k)
    overall = Counter(w for f in file_ids for w in set(_words(" ".join(text[f]))))
    names: dict[int, str] = {}
    for j in range(k):
        members = [f for f, lab in zip(file_ids, labels, strict=True) if lab == j]
        local = Counter(w for f in members for w in set(_words(" ".join(text[f]))))
        scored = sorted(
            local, key=lambda w: (local[w] / len(members)) * np.log(len(file_ids) / overall[w]), reverse=True
        )
        names[j] = f"{j + 1}:" + "-".join(scored[:3])
    centers = {j: x[labels == j].mean(axis=0) for j in range(k)}
    members_out = [
        (fid, names[int(lab)], float(x[i] @ centers[int(lab)]))
        for i, (fid, lab) in enumerate(zip(file_ids, labels, strict=True))
    ]
    return _save(fs, name, f"clusters:{k}", mount or "*", members_out)


def views(fs: SemFS) -> list[dict[str, Any]]:
    return fs.db.q(
        "SELECT v.name, v.kind, v.query, v.created_at, count(f.file_id) AS files FROM semfs_views v "
        "LEFT JOIN semfs_view_files f ON f.view = v.name GROUP BY v.name ORDER BY v.name"
    )


def drop_view(fs: SemFS, name: str) -> None:
    name = _check_name(name)
    with fs.db.tx() as conn:
        if not conn.execute("DELETE FROM semfs_views WHERE name = ?", (name,)).rowcount:
            raise UsageError(f"no view named '@{name}'")


def expand(fs: SemFS, targets: list[str]) -> list[str]:
    """Paths named directly or through ``@VIEW``, in order, without duplicates."""
    out: list[str] = []
    for target in targets:
        items = [r["path"] for r in fs.ls(target)] if target.startswith("@") else [target]
        out.extend(p for p in items if p not in out)
    return out


def concat_files(fs: SemFS, sources: list[str]) -> str:
    """The sources one after another, each under a ``## path`` header."""
    files = expand(fs, sources)
    if len(files) < 2:
        raise UsageError("join needs at least two files")
    parts = []
    for source in files:
        mount, rel = fs.resolve(source)
        body = fs.cat(source).decode("utf-8", errors="replace").rstrip("\n")
        parts.append(f"## {mount.name}/{rel}\n\n{body}\n")
    return "\n".join(parts)
