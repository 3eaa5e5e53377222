"""examples/bulk_script.py runs end to end against the fake server, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bulk_script_writes_one_png_per_prompt(tmp_path: Path) -> None:
    """The script, run as a subprocess with --fake, leaves a real PNG per prompt."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red bicycle\n\na blue kettle\na green door\n", encoding="utf-8")
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "bulk_script.py"),
            "--fake",
            str(prompts),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["00000-0.png", "00001-0.png", "00002-0.png"]
    assert all(f.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for f in files)
    assert "status queries" in done.stdout
