"""PyKMIP's server (from PyPI) for the benchmark, in a virtual environment of its own.

``PyKmipServer(workdir, ca).start()`` makes (or reuses) a virtual environment under /tmp with
``pykmip==0.11.0`` and ``sqlalchemy<2`` (PyKMIP 0.11 does not run on SQLAlchemy 2), issues the
server a certificate from the given CA, writes a server config (TLS 1.2 auth suite, client
certificates required, an SQLite database, an empty policy directory) and starts
``pykmip-server`` on a free port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kmipd import pki

VENV = Path(os.environ.get("KMIPD_BENCH_PYKMIP_VENV", "/tmp/kmipd-bench-pykmip-venv"))
REQUIREMENTS = ["pykmip==0.11.0", "sqlalchemy<2"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_venv() -> Path:
    """The ``pykmip-server`` executable, installing PyKMIP in its venv if needed."""
    server = VENV / "bin" / "pykmip-server"
    if server.exists():
        return server
    print(f"creating {VENV} and installing {' '.join(REQUIREMENTS)} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *REQUIREMENTS], check=True)
    return server


@dataclass
class PyKmipServer:
    workdir: Path
    ca: pki.Issued
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        executable = ensure_venv()
        self.workdir.mkdir(parents=True, exist_ok=True)
        issued = pki.issue_server(self.ca, ["localhost", "127.0.0.1"])
        cert, key = self.workdir / "server.pem", self.workdir / "server-key.pem"
        ca_path = self.workdir / "ca.pem"
        pki.write_public(cert, issued.certificate_pem())
        pki.write_private(key, issued.private_key_pem())
        pki.write_public(ca_path, self.ca.certificate_pem())
        policies = self.workdir / "policies"
        policies.mkdir(exist_ok=True)
        self.port = self.port or free_port()
        config = self.workdir / "server.conf"
        config.write_text(
            "[server]\n"
            f"hostname={self.host}\n"
            f"port={self.port}\n"
            f"certificate_path={cert}\n"
            f"key_path={key}\n"
            f"ca_path={ca_path}\n"
            "auth_suite=TLS1.2\n"
            f"policy_path={policies}\n"
            "enable_tls_client_auth=True\n"
            "logging_level=WARNING\n"
            f"database_path={self.workdir / 'pykmip.db'}\n"
        )
        log = (self.workdir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [str(executable), "-f", str(config), "-l", str(self.workdir / "pykmip.log")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pykmip-server exited: {self.log()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"pykmip-server did not start: {self.log()}")

    def log(self) -> str:
        parts = []
        for name in ("server.log", "pykmip.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
