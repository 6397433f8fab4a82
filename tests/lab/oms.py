"""Helpers shared by the lab tests: an OMS of their own (state, log, config under a tmp dir)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def oms_env(root: Path) -> dict[str, str]:
    """The environment that points viocli's state dir, log file and config under ``root``."""
    return {
        "VIOCLI_STATE_DIR": str(root / "state"),
        "VIOCLI_LOG_FILE": str(root / "log" / "viocli.log"),
        "VIOCLI_CONFIG": str(root / "etc" / "viocli.conf"),
    }


def run_viocli(env: dict[str, str], *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    """Run the real CLI as an operator would, with ``env`` on top of this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "viocli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
