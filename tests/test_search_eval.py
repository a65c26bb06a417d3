"""The search evaluation set stays valid: every tool and submission passes author_tool's checks, every
example passes in the sandbox, duplicates behave like their targets and look-alikes do not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_evaluation_set_is_consistent() -> None:
    proc = subprocess.run([sys.executable, "tests/search_eval/validate_dataset.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")
