"""The semantic FS index in chroma's client/server mode, against a real ``chroma run`` server.

``[semfs] chroma_url`` makes the vectors live in a chroma server (``chromadb.HttpClient``) instead of the
data dir's ``chroma/`` (``PersistentClient``): the scale-out path. SQLite stays the source of truth; the
outbox fills the server's collection, and a hybrid search finds by meaning through it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import chromadb
import httpx
import pytest
from chromadb.config import Settings

from aios.config import Config, parse_config
from aios.errors import ConfigError
from kernel.backends.fake import FakeBackend
from kernel.kernel import open_kernel
from memory.embeddings import MODEL_NAME, ChromaServerUnavailable
from memory.semfs import SemFS
from tests.unit._semfs_kit import chunk_rows, write_corpus

CHROMA = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "chroma"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chroma_cli() -> str:
    found = shutil.which("chroma") or (str(CHROMA) if CHROMA.exists() else None)
    if found is None:
        pytest.fail("the `chroma` CLI (installed with chromadb) is missing: pip install -e '.[test]'")
    return found


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real chroma server (``chroma run``) on a free port, persisting to a tmp dir."""
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log_path = data.parent / "chroma-server.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [_chroma_cli(), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer its heartbeat in 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _server_collections(url: str) -> dict[str, int]:
    port = int(url.rsplit(":", 1)[1])
    client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False))
    return {c.name: c.count() for c in client.list_collections()}


def test_semfs_indexes_into_a_chroma_server_and_hybrid_search_finds_by_meaning(chroma_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    fs = SemFS(db_path=home / "aios.db", chroma_path=home / "chroma", chroma_url=chroma_url)
    try:
        fs.index(write_corpus(tmp_path / "docs"))
        assert fs.embed_pending() > 0 and fs.vectors.pending() == 0
        chunks = len(chunk_rows(fs))
        assert fs.vectors.count() == chunks
        top = fs.search("insects eating my vegetable plants", k=3)
        assert top[0].relpath == "garden.md" and "semantic" in top[0].matched_by
        assert fs.search("forgot my login credentials", k=1, mode="semantic")[0].relpath == "code/auth.py"
        name = f"{fs.vectors.collection_prefix}-{MODEL_NAME}"
    finally:
        fs.close()
    assert not (home / "chroma").exists(), "with a chroma server nothing is written to the local chroma dir"
    assert _server_collections(chroma_url)[name] == chunks

    # Another data dir on the same server gets a collection of its own (chunk ids are per database).
    other = SemFS(db_path=tmp_path / "other" / "aios.db", chroma_url=chroma_url)
    try:
        other.index(write_corpus(tmp_path / "docs2", {"owls.md": "# Owls\n\nOwls hunt mice at night.\n"}))
        other.embed_pending()
        assert other.vectors.collection_prefix != fs.vectors.collection_prefix
        assert [h.relpath for h in other.search("birds that hunt in the dark", k=1)] == ["owls.md"]
    finally:
        other.close()
    assert _server_collections(chroma_url)[name] == chunks


def test_an_unreachable_chroma_server_is_one_clear_error_and_keyword_search_still_works(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    fs = SemFS(db_path=tmp_path / "home" / "aios.db", chroma_url=url)
    try:
        fs.index(write_corpus(tmp_path / "docs"))
        assert [h.relpath for h in fs.search("aphids", mode="keyword")] == ["garden.md"]
        with pytest.raises(ChromaServerUnavailable, match=f"cannot reach the chroma server at {url}"):
            fs.embed_pending()
        assert fs.vectors.pending() > 0, "the outbox keeps the work for when the server is back"
    finally:
        fs.close()


def test_chroma_url_is_configured_and_reaches_the_kernels_index(chroma_url: str) -> None:
    with pytest.raises(ConfigError, match=r"semfs\.chroma_url"):
        parse_config({"semfs": {"chroma_url": "127.0.0.1:8000"}}, "config.toml")
    config = parse_config({"llm": {"backend": "fake"}, "semfs": {"chroma_url": chroma_url}}, "config.toml")

    async def main() -> str:
        with anyio.fail_after(60):
            async with open_kernel(config, runtime=FakeBackend()) as kernel:
                return str(kernel.services["semfs"].vectors.chroma_url)

    assert anyio.run(main) == chroma_url
    assert Config().semfs.chroma_url == ""
