"""Watching mounts: watchdog observer -> debounced queue -> re-index of only what changed.

watchdog's thread only records ``(mount, relpath)`` events. One worker thread waits until a path has been
quiet for ``debounce_s`` (editors write files in several steps), then re-indexes it; moves within a mount
keep the file's chunks and vectors; a deleted folder drops everything below it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from memory.semfs.db import Mount

__all__ = ["Watcher"]

log = logging.getLogger(__name__)

#: (mount, relpath, dest relpath or None, is_dir, deleted)
Change = tuple[Mount, str, str | None, bool, bool]


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher, mount: Mount) -> None:
        self.watcher = watcher
        self.mount = mount
        self.root = str(mount.path)

    def _rel(self, path: str | bytes) -> str | None:
        # Lexical: watchdog reports paths below the watched root as given (the mount's real path). Resolving
        # them here would race with renames (and follow links); the indexer opens each one confined anyway.
        rel = os.path.relpath(os.path.normpath(os.fsdecode(path)), self.root)
        if rel == "." or rel.startswith(".."):
            return None
        return rel.replace(os.sep, "/")

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        src = self._rel(event.src_path)
        if src is None:
            return
        dest = self._rel(event.dest_path) if event.event_type == "moved" and event.dest_path else None
        self.watcher.push((self.mount, src, dest, event.is_directory, event.event_type == "deleted"))


class Watcher:
    def __init__(self, apply: Callable[[list[Change]], None], *, debounce_s: float = 0.2) -> None:
        self.apply = apply
        self.debounce_s = debounce_s
        self.observer = Observer()
        self._pending: dict[tuple[int, str], tuple[Change, float]] = {}
        self._cond = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="aios-semfs-watch", daemon=True)
        self._watches: dict[int, object] = {}

    def start(self) -> None:
        self.observer.start()
        self._worker.start()

    def watch(self, mount: Mount) -> bool:
        if mount.id in self._watches:
            return True
        if not mount.present:
            log.warning("mount %s (%s) is missing; not watching it", mount.name, mount.path)
            return False
        if os.path.islink(mount.path):
            log.warning("mount %s (%s) is now a symbolic link; not watching it", mount.name, mount.path)
            return False
        try:
            self._watches[mount.id] = self.observer.schedule(_Handler(self, mount), str(mount.path), recursive=True)
        except OSError as exc:  # the folder vanished (or was swapped) between the check and the watch
            log.warning("mount %s (%s) cannot be watched: %s", mount.name, mount.path, exc.strerror or exc)
            return False
        return True

    def unwatch(self, mount_id: int) -> None:
        watch = self._watches.pop(mount_id, None)
        if watch is not None:
            self.observer.unschedule(watch)  # type: ignore[arg-type]

    def push(self, change: Change) -> None:
        mount, rel = change[0], change[1]
        with self._cond:
            key = (mount.id, rel if change[2] is None else f"{rel}\x00{change[2]}")
            self._pending[key] = (change, time.monotonic())
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._pending

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                now = time.monotonic()
                newest = max(t for _, t in self._pending.values())
                wait = self.debounce_s - (now - newest)
                if wait > 0:
                    # Flush anyway once changes have kept coming for a while, so a busy folder still updates.
                    oldest = min(t for _, t in self._pending.values())
                    if now - oldest < self.debounce_s * 10:
                        self._cond.wait(wait)
                        continue
                batch = [c for c, _ in sorted(self._pending.values(), key=lambda x: x[1])]
                self._pending.clear()
            try:
                self.apply(batch)
            except Exception:
                log.exception("applying %d file change(s) failed", len(batch))

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        try:
            self.observer.stop()
            self.observer.join(timeout=5)
        except RuntimeError:
            pass
        if self._worker.is_alive():
            self._worker.join(timeout=5)

    @staticmethod
    def root_of(mount: Mount) -> Path:
        return mount.path
