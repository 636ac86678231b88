"""Helpers for the semantic FS tests: a small corpus on disk and a SemFS over the test's AIOS_HOME."""

from __future__ import annotations

from pathlib import Path

from memory.semfs import SemFS

CORPUS = {
    "garden.md": "# Garden\n\nTomatoes need full sun and regular watering.\n\n## Pests\n\n"
    "Aphids can be washed off the leaves with soapy water.\n",
    "recipes/bread.md": "# Sourdough\n\nFeed the starter the night before. Bake at 230 degrees for forty minutes.\n",
    "code/auth.py": 'def reset_password(user):\n    """Email the user a link to choose a new password."""\n'
    "    return send_mail(user, RESET_TEMPLATE)\n",
    "notes/travel.txt": "Passport renewal takes six weeks. Book the train to Lyon in March.\n",
}


def write_corpus(root: Path, files: dict[str, str] | None = None) -> Path:
    for rel, text in (files or CORPUS).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def open_fs(home: Path, **kwargs: object) -> SemFS:
    return SemFS(db_path=home / "aios.db", chroma_path=home / "chroma", **kwargs)  # type: ignore[arg-type]


def chunk_rows(fs: SemFS) -> list[dict[str, object]]:
    return fs.db.q(
        "SELECT c.id, c.chunk_hash, c.embedded, f.relpath FROM semfs_chunks c "
        "JOIN semfs_files f ON f.id = c.file_id ORDER BY c.id"
    )
