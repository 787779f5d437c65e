"""Where the shared test data lives (``../shared/`` beside the repository), and a skip when absent.

The OASIS test cases and the vCenter capture have licences that keep them out of this
repository; tests read them at run time. CI always has them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("KMIPD_SHARED_DIR", REPO_ROOT.parent / "shared"))
KMIP_TESTCASES = SHARED / "kmip-testcases"
VCENTER_CAPTURE = SHARED / "vcenter-capture"


def require(path: Path) -> Path:
    """Skip the calling test, with the reason, when ``path`` is not there."""
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (set KMIPD_SHARED_DIR)")
    return path
