"""packaging/systemd/kmipd.service: a non-root user, the hardening options, reload by SIGHUP
and a stop that leaves kmipd time to answer the requests in flight.

The unit is read with a parser of its own (systemd allows a key more than once, which
configparser refuses). Where ``systemd-analyze`` is installed, ``systemd-analyze verify`` also
checks it, with ExecStart pointed at this Python's kmipd (verify wants the program to exist).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmipd.config import KmipSettings

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "kmipd.service"
DATA_DIR = "/var/lib/kmipd"


def parse(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file: each a list of (key, value) in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, equals, value = line.partition("=")
        assert equals and current is not None, f"line {number} is not key=value: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, str]:
    """[Service] with each key's last value (what systemd uses for a single-valued key)."""
    return dict(parse(UNIT.read_text(encoding="utf-8"))["Service"])


def test_the_unit_has_its_three_sections() -> None:
    sections = parse(UNIT.read_text(encoding="utf-8"))
    assert set(sections) == {"Unit", "Service", "Install"}
    assert ("WantedBy", "multi-user.target") in sections["Install"]


def test_runs_as_a_non_root_user_without_capabilities(service: dict[str, str]) -> None:
    assert service["User"] not in ("", "root", "0")
    assert service["Group"] not in ("", "root", "0")
    assert service["CapabilityBoundingSet"] == ""
    assert service["AmbientCapabilities"] == ""


def test_hardening_options(service: dict[str, str]) -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "SystemCallArchitectures": "native",
        "UMask": "0077",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_serves_its_state_directory(service: dict[str, str]) -> None:
    """ProtectSystem=strict leaves only the state directory writable: it must be the data
    directory ``kmipd serve`` is given."""
    program, *arguments = service["ExecStart"].split()
    assert Path(program).name == "kmipd"
    assert arguments == ["serve", "--data-dir", DATA_DIR]
    assert f"/var/lib/{service['StateDirectory']}" == DATA_DIR
    assert service["StateDirectoryMode"] == "0700"


def test_started_when_kmipd_says_it_is_ready(service: dict[str, str]) -> None:
    """kmipd.systemd_notify sends READY=1 once the ports are open: a reload is not sent
    before the SIGHUP handler is in place."""
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"


def test_reload_is_sighup_and_stop_outlasts_the_shutdown_grace(service: dict[str, str]) -> None:
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    timeout = float(service["TimeoutStopSec"])
    assert timeout > KmipSettings().shutdown_grace + 5  # drain, then close the store


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    text = UNIT.read_text(encoding="utf-8")
    program = text.split("ExecStart=", 1)[1].split()[0]
    unit = tmp_path / "kmipd.service"
    unit.write_text(text.replace(f"ExecStart={program}", f"ExecStart={sys.executable} -m kmipd"))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in result.stderr.splitlines() if "kmipd.service" in line]
    assert result.returncode == 0, result.stderr
    assert complaints == [], result.stderr
