"""Another commit's code for the benchmarks' --baseline runs, read straight from git."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def extract_package(commit: str, into: Path) -> Path:
    """That commit's `siamgpt_jax` package under `into` (put `into` first on a child's sys.path)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "siamgpt_jax"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def file_at(commit: str, path: str) -> str:
    """One file's text at that commit (path relative to the repository root)."""
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], capture_output=True, text=True,
                          check=True).stdout
