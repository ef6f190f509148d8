"""The repository itself: nothing a merge left half-done is committed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^(<{7}|>{7}|\|{7})( |$)|^={7}$", re.MULTILINE)


def tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the repository checks need git ls-files")
    suffixes = {".py", ".md", ".toml", ".html", ".css", ".js", ".json", ".txt", ".cfg"}
    names = [name for name in listed.decode().split("\0") if name]
    return [ROOT / name for name in names if Path(name).suffix in suffixes or name == ".ci/run"]


def test_no_file_holds_merge_conflict_markers() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
        for path in tracked_text_files()
        if path.is_file()
        for text in [path.read_text(encoding="utf-8", errors="replace")]
        for match in MARKER.finditer(text)
    ]
    assert offenders == [], f"conflict markers left by a merge: {offenders}"
