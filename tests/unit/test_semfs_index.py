"""Indexing and search against real SQLite (FTS5) and a real chroma store, with the bundled embedder."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from aios.confined import PathDenied
from aios.errors import UsageError
from memory.semfs import Filters, NotIndexed, SemFS, WriterBusy
from memory.semfs.check import check, rebuild
from memory.semfs.chunking import chunk_text
from memory.semfs.extract import ExtractError, extract
from memory.semfs.ignore import IgnoreRules
from tests.unit._semfs_kit import chunk_rows, open_fs, write_corpus


@pytest.fixture
def fs(aios_home: Path) -> SemFS:
    sem = open_fs(aios_home)
    yield sem
    sem.close()


def test_chunking_follows_structure() -> None:
    md = "# Title\nintro\n\n## Setup\nInstall it.\n\n```\ncode\n\nmore code\n```\n\n## Usage\nuse it.\n"
    chunks = chunk_text(md, "markdown", max_words=20)
    assert [c.heading for c in chunks] == ["Title", "Title > Setup", "Title > Usage"]
    assert "more code\n```" in chunks[1].text  # a fenced block is never split at its blank line
    code = "import os\n\n\n# helper\ndef a():\n    return 1\n\n\nclass B:\n    pass\n"
    headings = [c.heading for c in chunk_text(code, "code", max_words=10)]
    assert headings == ["", "def a():", "class B:"]
    long = chunk_text(" ".join(["word"] * 500), "text", max_words=100)
    assert len(long) == 5 and all(len(c.text.split()) <= 100 for c in long)


def test_ignore_rules_gitignore_and_defaults(tmp_path: Path) -> None:
    write_corpus(
        tmp_path,
        {
            ".gitignore": "build/\n*.log\n!keep.log\n",
            "a/.gitignore": "secret.txt\n",
            "build/out.txt": "x",
            "x.log": "x",
            "keep.log": "x",
            "a/secret.txt": "x",
            "secret.txt": "x",
            "node_modules/p/i.js": "x",
            ".git/HEAD": "x",
            "a/b.md": "x",
        },
    )
    assert IgnoreRules(tmp_path).walk() == [".gitignore", "a/.gitignore", "a/b.md", "keep.log", "secret.txt"]


def test_extraction_of_documents_and_bad_bytes() -> None:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew in the northern region.")
    buf = io.BytesIO()
    document.save(buf)
    text = extract("r.docx", buf.getvalue()).text
    assert "# Quarterly report" in text and "northern region" in text
    assert "Invoice total due" in extract("a.pdf", _tiny_pdf("Invoice total due")).text
    with pytest.raises(ExtractError, match="binary"):
        extract("x.dat", b"\x00\x01\x02" * 100)
    with pytest.raises(ExtractError, match="undecodable"):
        extract("x.txt", bytes(range(128, 256)) * 10)
    with pytest.raises(ExtractError, match="unreadable"):
        extract("broken.pdf", b"%PDF-1.4 garbage")
    with pytest.raises(ExtractError, match="unreadable"):
        extract("broken.docx", b"PK not a zip")


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF with ``text`` in Helvetica, built by hand (offsets computed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_index_is_keyword_searchable_before_vectors_then_hybrid(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    (root / "report.pdf").write_bytes(_tiny_pdf("Invoice total due in thirty days"))
    stats = fs.index(root)
    assert stats["indexed"] == 5 and stats["chunks_added"] >= 5
    assert fs.vectors.pending() > 0
    # Keyword search works before any vector exists.
    hits = fs.search("aphids", mode="keyword")
    assert [h.relpath for h in hits] == ["garden.md"] and "Aphids" in hits[0].chunk
    assert fs.search("invoice", mode="keyword")[0].relpath == "report.pdf"
    assert fs.search("insects eating my vegetable plants", mode="semantic") == []  # no vectors yet
    fs.embed_pending()
    assert fs.vectors.pending() == 0 and fs.vectors.count() == len(chunk_rows(fs))
    top = fs.search("insects eating my vegetable plants", k=3)
    assert top[0].relpath == "garden.md" and "semantic" in top[0].matched_by
    assert fs.search("forgot my login credentials", k=1)[0].relpath == "code/auth.py"


def test_filters_and_no_results(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    fs.index(root)
    fs.embed_pending()
    assert {h.relpath for h in fs.search("password", filters=Filters(type="code"))} == {"code/auth.py"}
    assert {h.relpath for h in fs.search("water", filters=Filters(glob="recipes/*"), mode="keyword")} == set()
    assert {h.relpath for h in fs.search("bake", filters=Filters(glob="*.md"))} >= {"recipes/bread.md"}
    assert fs.search("passport", filters=Filters(type=".txt"))[0].relpath == "notes/travel.txt"
    assert fs.search("passport", filters=Filters(since=os.path.getmtime(root / "garden.md") + 3600)) == []
    fs.index(write_corpus(tmp_path / "other", {"pests.md": "Aphids and greenfly on the roses."}))
    fs.embed_pending()
    docs = fs.db.mount_by_name("docs").id
    for mode in ("keyword", "semantic", "hybrid"):
        hits = fs.search("aphids on plants", filters=Filters(within=((docs, ""),)), mode=mode)  # type: ignore[arg-type]
        assert hits and {h.mount for h in hits} == {"docs"}
        # A scope may be a folder inside a mount: nothing outside it is found.
        inside = fs.search("passport", filters=Filters(within=((docs, "notes"),)), mode=mode)  # type: ignore[arg-type]
        assert inside and {h.relpath.split("/")[0] for h in inside} == {"notes"}
        assert fs.search("aphids", filters=Filters(within=((docs, "notes"),)), mode=mode) == []  # type: ignore[arg-type]
    assert fs.search("aphids", filters=Filters(within=())) == []
    assert fs.search("qwxzzy", mode="keyword") == []
    assert fs.search("!!! ???", mode="keyword") == []  # punctuation only: no FTS syntax error
    with pytest.raises(UsageError, match="unknown type"):
        fs.search("x", filters=Filters(type="spreadsheet"))
    with pytest.raises(NotIndexed, match="no mount named"):
        fs.search("x", filters=Filters(mount="nope"))


def test_reindex_touches_only_changed_chunks(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(
        tmp_path / "docs", {"long.md": "# A\n\nfirst part about apples.\n\n# B\n\nsecond part about pears.\n"}
    )
    fs.index(root)
    fs.embed_pending()
    before = {r["chunk_hash"]: r["id"] for r in chunk_rows(fs)}
    (root / "long.md").write_text("# A\n\nfirst part about apples.\n\n# B\n\nsecond part about plums.\n")
    stats = fs.index(root)
    assert (stats["chunks_added"], stats["chunks_removed"]) == (1, 1)
    after = {r["chunk_hash"]: r["id"] for r in chunk_rows(fs)}
    kept = set(before) & set(after)
    assert len(kept) == 1 and all(before[h] == after[h] for h in kept)  # the unchanged chunk kept its id/vector
    fs.embed_pending()
    assert fs.vectors.all_ids() == {r["id"] for r in chunk_rows(fs)}
    assert check(fs)["ok"]


def test_bad_files_are_recorded_and_skipped(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs", {"ok.md": "fine text about owls"})
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" * 50)
    (root / "legacy.txt").write_bytes(bytes(range(128, 256)) * 4)
    (root / "locked.md").write_text("secret")
    os.chmod(root / "locked.md", 0)
    fs.indexer.max_bytes = 1000
    (root / "huge.txt").write_text("big " * 1000)
    try:
        stats = fs.index(root)
    finally:
        os.chmod(root / "locked.md", 0o644)
    skipped = {r["relpath"]: r["skipped"] for r in fs.ls() if r["skipped"]}
    expected = {"image.png": "binary", "legacy.txt": "undecodable", "huge.txt": "too large"}
    if os.geteuid() != 0:  # root reads mode-000 files anyway
        expected["locked.md"] = "unreadable"
    assert {k: v for k, v in skipped.items() if k in expected} == expected
    assert stats["skipped"] == len(expected)
    assert [h.relpath for h in fs.search("owls", mode="keyword")] == ["ok.md"]


def test_file_deleted_mid_index_and_missing_mount(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    mount = fs.mount(root)
    real = fs.indexer.index_file

    def vanish_then_index(m, rel, **kw):  # type: ignore[no-untyped-def]
        if rel == "garden.md":
            (root / rel).unlink()  # deleted between the folder walk and the read
        return real(m, rel, **kw)

    fs.indexer.index_file = vanish_then_index  # type: ignore[method-assign]
    stats = fs.reconcile(mount)
    fs.indexer.index_file = real  # type: ignore[method-assign]
    assert "garden.md" not in {r["relpath"] for r in fs.ls()} and stats["files"] == 4
    assert fs.search("aphids", mode="keyword") == []
    # The mount's folder disappears: its index is kept and the mount is reported missing.
    os.rename(root, tmp_path / "elsewhere")
    stats = fs.reconcile(fs.find_mount("docs"))
    assert stats["missing_root"] and fs.mounts()[0]["present"] is False
    assert fs.search("sourdough", mode="keyword")[0].relpath == "recipes/bread.md"
    with pytest.raises(UsageError, match="not available"):
        fs.write(root / "new.md", b"x")


def test_mount_errors_and_unmount(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    with pytest.raises(UsageError, match="not a folder"):
        fs.mount(tmp_path / "nope")
    fs.mount(root, "docs")
    with pytest.raises(UsageError, match="overlaps"):
        fs.mount(root / "recipes")
    with pytest.raises(UsageError, match="already exists"):
        (tmp_path / "other").mkdir()
        fs.mount(tmp_path / "other", "docs")
    with pytest.raises(NotIndexed, match="not inside any mount"):
        fs.history(tmp_path / "other" / "x.md")
    fs.index(root)
    fs.embed_pending()
    assert fs.unmount("docs")["chunks_removed"] > 0
    fs.embed_pending()
    assert fs.vectors.count() == 0 and fs.ls() == [] and check(fs)["ok"]
    assert sorted(p.name for p in root.iterdir()) == ["code", "garden.md", "notes", "recipes"]  # untouched


def test_second_writer_is_refused(fs: SemFS, aios_home: Path) -> None:
    with pytest.raises(WriterBusy, match="another aios process"):
        open_fs(aios_home)
    reader = open_fs(aios_home, writer=False)
    assert reader.mounts() == []
    with pytest.raises(UsageError, match="read-only"):
        reader.mount(aios_home)
    reader.close()


def test_check_reports_drift_and_rebuild_repairs(fs: SemFS, tmp_path: Path) -> None:
    fs.index(write_corpus(tmp_path / "docs"))
    fs.embed_pending()
    ids = sorted(r["id"] for r in chunk_rows(fs))
    fs.vectors.collection.delete(ids=[str(ids[0])])  # a vector lost from chroma
    fs.vectors.collection.upsert(ids=["999999"], embeddings=[[0.1] * 384])  # an orphan vector
    with fs.db.tx() as conn:
        conn.execute("DELETE FROM semfs_fts WHERE rowid = ?", (ids[1],))
    report = check(fs)
    assert not report["ok"]
    assert (report["missing_in_chroma"], report["orphans_in_chroma"], report["missing_in_fts"]) == (1, 1, 1)
    repaired = rebuild(fs)
    assert repaired["ok"] and repaired["vectors"] == len(ids)
    assert fs.search("aphids", mode="keyword")[0].relpath == "garden.md"


def test_symlinks_out_of_a_mount_are_not_followed(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the vault code is 0000")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    fs.index(root)
    assert fs.search("vault", mode="keyword") == []  # symlinks are not indexed
    with pytest.raises(PathDenied, match="leads outside"):
        fs.cat(root / "link.txt")
    with pytest.raises(PathDenied, match="leads outside"):
        fs.write(root / "linkdir" / "new.txt", b"escape")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert fs.progress_line() == f"files {len(fs.ls())} · embedding {fs.vectors.pending()} chunks…"


def test_background_embedder_yields_to_a_busy_llm(fs: SemFS, tmp_path: Path) -> None:
    import threading
    import time

    fs.index(write_corpus(tmp_path / "docs"))
    pending = fs.vectors.pending()
    llm_busy = threading.Event()
    llm_busy.set()
    checks = []

    def busy() -> bool:
        checks.append(1)
        return llm_busy.is_set()

    worker = threading.Thread(target=fs.vectors.run_background, args=(busy,), kwargs={"max_defer_s": 600})
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(checks) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(checks) >= 5 and fs.vectors.pending() == pending  # deferred while the LLM works
        llm_busy.clear()
        while fs.vectors.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fs.vectors.pending() == 0
    finally:
        fs.vectors.stopping.set()
        fs.vectors.wake.set()
        worker.join(timeout=30)
