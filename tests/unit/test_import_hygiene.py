from __future__ import annotations

import subprocess
import sys


def test_core_packages_do_not_import_textual() -> None:
    code = (
        "import sys, aios, aios.api, aios.config, aios.plugin_manager, kernel, kernel.kernel, kernel.engine;"
        "import memory, tools, plugins.chat;"
        "bad = [m for m in ('textual',) if m in sys.modules];"
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
