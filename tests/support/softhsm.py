"""A SoftHSM2 token of the test run's own, in a temporary directory (never the system token).

``token()`` makes it once per process: a ``softhsm2.conf`` naming a fresh token directory, set
as ``SOFTHSM2_CONF`` before the PKCS#11 module is first loaded (SoftHSM2 reads it in
``C_Initialize``), and a token initialised with ``softhsm2-util``. Without SoftHSM2 or
``python-pkcs11`` the calling test is skipped with the reason, except under CI (``CI=true``),
where that is a failure: CI installs both (``.ci/run``), so PKCS#11 tests never skip there.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
TOKEN_LABEL = "kmipd-tests"
USER_PIN = "4321-test-pin"
SO_PIN = "8765-test-so-pin"


@dataclass(frozen=True)
class SoftHsmToken:
    module: str
    label: str
    user_pin: str
    directory: Path


_token: SoftHsmToken | None = None


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip (outside CI) or fail (under CI) the calling test."""
    if under_ci():
        pytest.fail(f"{reason}; CI must run the PKCS#11 tests (.ci/run installs softhsm2)")
    pytest.skip(reason)


def module_path() -> str | None:
    configured = os.environ.get("KMIPD_TEST_PKCS11_MODULE")
    if configured:
        return configured if Path(configured).exists() else None
    return next((path for path in MODULE_CANDIDATES if Path(path).exists()), None)


def token() -> SoftHsmToken:
    global _token
    if _token is not None:
        return _token
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        unavailable("python-pkcs11 is not installed (pip install -e '.[test]')")
    module = module_path()
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        unavailable("SoftHSM2 is not installed (apt-get install softhsm2)")
    assert module is not None and util is not None
    directory = Path(tempfile.mkdtemp(prefix="kmipd-softhsm-"))
    atexit.register(shutil.rmtree, directory, True)
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n",
        encoding="utf-8",
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--so-pin",
            SO_PIN,
            "--pin",
            USER_PIN,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    _token = SoftHsmToken(module, TOKEN_LABEL, USER_PIN, directory)
    return _token
