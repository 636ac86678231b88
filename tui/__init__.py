"""The Textual front end. It holds no business logic: it drives a KernelClient."""

from __future__ import annotations

from tui.app import AiosApp, make_app

__all__ = ["AiosApp", "make_app"]
