"""One lock around every chromadb call in this process (without importing chromadb).

chromadb waits on its own internal locks while holding the GIL: two threads in it at once (a count beside a
query) stalled the kernel's event loop ~30 ms. Serialising the calls behind a plain Python lock lets the
waiting thread release the GIL. Embedding happens outside the lock.
"""

from __future__ import annotations

import threading

__all__ = ["CHROMA_LOCK"]

CHROMA_LOCK = threading.Lock()
