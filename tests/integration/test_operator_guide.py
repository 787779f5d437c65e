"""Every command of the operator guide (``docs/guide/``), run in order against a real kmipd.

Page by page, each ```` ```sh ```` block runs in ``bash -euo pipefail`` in one working
directory, with the variables of the guide's index set to this test's own setup: a new
PostgreSQL database, free ports, a SoftHSM2 token, and a second kmipd as the remote Key
Protect. Variables a block exports are kept for the later blocks. A block must exit 0 (or
its ``expect-exit``) and show what its ``expect-output`` / ``expect-match`` say. Blocks
marked ``run-in-background`` are the guide's ``kmipd serve`` commands: started here, waited
for on their ports, restarted when the same command comes again, stopped at the end. At each
``<!-- vcenter: ... -->`` the test does over KMIP what vCenter or an ESXi host would do at
that point (``VCenterStandIn``), with the files and certificates the guide made.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kmipd import pki
from kmipd.protocol import messages
from kmipd.protocol._generated import Operation, ResultReason, ResultStatus
from kmipd.protocol.payloads import GetRequest
from tests.support import kmip, softhsm
from tests.support.guide import (
    Block,
    GuideError,
    Step,
    VCenterStep,
    exported_names,
    read_page,
)
from tests.support.keyprotect import instance_id, keyprotect_server, new_api_key
from tests.support.postgres import fresh_database
from tests.support.server import KmipConnection, KmipdServer, free_port
from tests.support.vcenter import PRODUCT_TAGS, VCenterSession

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide"
BLOCK_TIMEOUT = 120.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 25.0
# bash's own bookkeeping variables, not the guide's.
SHELL_VARIABLES = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
ACTIVE = 2
PRE_ACTIVE = 1
OUTPUT_SHOWN = 6000
# docs/cluster.md: a change made on one node takes effect on every node within a second.
PROPAGATION = 3.0
# vCenter's self-signed client certificates last years, not the test helper's 30 days.
VCENTER_CERTIFICATE_DAYS = 3650


def guide_pages() -> list[Path]:
    pages = sorted(GUIDE.glob("[0-9][0-9]-*.md"))
    assert pages, f"no pages in {GUIDE}"
    return pages


# -- what the test stands in for: vCenter and its ESXi hosts --------------------------------


@dataclass(frozen=True)
class Kms:
    name: str
    port: int


@dataclass
class VCenterStandIn:
    """What vCenter and its hosts do over KMIP, with what the admin gave vCenter.

    ``credentials`` is the client certificate and key vCenter presents (the last trust method
    the guide set up); ``ca`` the KMS certificate vCenter trusts. Keys are tracked per VM (the
    newest is the one in use) so that ``esxi-boot`` fetches exactly what hosts would.
    """

    work: Path
    private: Path
    env: Mapping[str, str]
    ca: Path | None = None
    servers: list[Kms] = field(default_factory=list)
    credentials: tuple[Path, Path] | None = None
    csr_key: Path | None = None
    vms: dict[str, list[str]] = field(default_factory=dict)
    deleted_vms: set[str] = field(default_factory=set)
    revoked_vms: set[str] = field(default_factory=set)
    host_keys: dict[str, str] = field(default_factory=dict)
    vsan_keys: list[str] = field(default_factory=list)
    material: dict[str, bytes] = field(default_factory=dict)

    def run(self, step: VCenterStep, env: Mapping[str, str]) -> None:
        self.env = env
        action = getattr(self, "do_" + step.action.replace("-", "_"), None)
        assert action is not None, f"{step.where}: unknown vcenter action {step.action!r}"
        action(*step.args)

    # trust ---------------------------------------------------------------------------------

    def do_trust_kms_ca(self, name: str) -> None:
        self.ca = self.work / name
        x509.load_pem_x509_certificate(self.ca.read_bytes())

    def do_add_kms(self, name_variable: str, port_variable: str) -> None:
        self.servers.append(Kms(self.env[name_variable], int(self.env[port_variable])))

    def do_make_root_ca(self, name: str) -> None:
        """vCenter's own CA (VMCA) and a client certificate it issued."""
        vmca = pki.create_ca("CA")
        client = pki.issue_client(vmca, "vcenter-kmip-client")
        (self.work / name).write_bytes(vmca.certificate_pem())
        self._use(client.certificate_pem(), client.private_key_pem(), "vmca-client")

    def do_make_self_signed(self, name: str) -> None:
        certificate, key = kmip.certificate(
            "kmipClient20261128230000",
            rsa_key=True,
            not_after=kmip.now() + dt.timedelta(days=VCENTER_CERTIFICATE_DAYS),
        )
        cert_path, key_path = kmip.write_credentials(self.private, "self-signed", certificate, key)
        (self.work / name).write_bytes(cert_path.read_bytes())
        self.credentials = (cert_path, key_path)

    def do_upload_certificate_and_key(self, certificate: str, key: str) -> None:
        self._use((self.work / certificate).read_bytes(), (self.work / key).read_bytes(), "kms")

    def do_make_csr(self, name: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vc01 csr")]))
            .sign(key, hashes.SHA256())
        )
        (self.work / name).write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        self.csr_key = self.private / "csr-key.pem"
        self.csr_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def do_upload_signed(self, name: str) -> None:
        assert self.csr_key is not None, "upload-signed before make-csr"
        self.credentials = (self.work / name, self.csr_key)

    def _use(self, certificate_pem: bytes, key_pem: bytes, label: str) -> None:
        cert_path, key_path = self.private / f"{label}.pem", self.private / f"{label}-key.pem"
        cert_path.write_bytes(certificate_pem)
        key_path.write_bytes(key_pem)
        self.credentials = (cert_path, key_path)

    def do_check_connected(self) -> None:
        """What vCenter does when a KMS is added and every 5 minutes, on every KMS."""
        assert self.servers, "check-connected before add-kms"
        for kms in self.servers:
            with self._session(kms) as session:
                assert (1, 1) in session.discover_versions()
            with self._session(kms) as session:
                assert session.query_server_information()

    # keys ----------------------------------------------------------------------------------

    def do_encrypt_vm(self, name: str) -> None:
        if not self.host_keys:  # the hosts enter crypto safe mode with the first VM
            for host in ("esx01", "esx02"):
                self.host_keys[host] = self._new_key(("ESXi Server", host))
        assert name not in self.vms, f"{name} is encrypted already"
        self.vms[name] = [self._new_key(("Virtual Machine", name))]

    def do_rekey_vm(self, name: str) -> None:
        self.vms[name].append(self._new_key(("Virtual Machine", name)))

    def do_enable_vsan(self, cluster: str) -> None:
        # The cluster's KEK and host key; how vSAN tags them is not known (vcenter-kmip.md).
        self.vsan_keys = [self._new_key(None), self._new_key(None)]

    def do_delete_vm(self, name: str) -> None:
        self.deleted_vms.add(name)  # vCenter sends nothing to the KMS

    def do_export_keys_in_use(self, name: str) -> None:
        used = [keys[-1] for vm, keys in self.vms.items() if vm not in self.deleted_vms]
        used += [*self.host_keys.values(), *self.vsan_keys]
        (self.work / name).write_text("".join(f"{uid}\r\n" for uid in used), encoding="ascii")

    def do_esxi_boot(
        self, name_variable: str | None = None, port_variable: str | None = None
    ) -> None:
        """Hosts boot: each fetches the keys it needs, from each KMS given, byte for byte."""
        targets = self.servers
        if name_variable is not None and port_variable is not None:
            targets = [Kms(self.env[name_variable], int(self.env[port_variable]))]
        for kms in targets:
            # A host retries; a node learns of a root key restored on another within a second.
            _eventually(
                lambda kms=kms: (
                    self._get_item(kms, self._in_use()[0]).result_status == ResultStatus.SUCCESS
                )
            )
            for uid in self._in_use():
                with self._session(kms) as session:
                    assert _material(session.get(uid)) == self.material[uid], f"{uid} {kms}"
                with self._session(kms) as session:
                    assert session.state(uid) == ACTIVE

    def do_expect_refused(self, name: str) -> None:
        for kms in self.servers:
            for uid in self.vms[name]:
                item = self._get_item(kms, uid)
                assert item.result_status == ResultStatus.OPERATION_FAILED, (uid, item)
        self.revoked_vms.add(name)

    def do_expect_all_refused(self) -> None:
        for kms in self.servers:
            # The node that deleted the root key refuses at once, the others within a second.
            _eventually(
                lambda kms=kms: (
                    self._get_item(kms, self._in_use()[0]).result_status != ResultStatus.SUCCESS
                )
            )
            for uid in self._in_use():
                item = self._get_item(kms, uid)
                assert item.result_status == ResultStatus.OPERATION_FAILED, (uid, item)
                assert item.result_reason == ResultReason.CRYPTOGRAPHIC_FAILURE, (uid, item)

    def _in_use(self) -> list[str]:
        gone = self.deleted_vms | self.revoked_vms
        used = [keys[-1] for vm, keys in self.vms.items() if vm not in gone]
        return [*self.host_keys.values(), *self.vsan_keys, *used]

    def _new_key(self, owner: tuple[str, str] | None) -> str:
        """Create, tag, fetch and activate a key, one connection per step, as vCenter does."""
        kms = self.servers[0]
        with self._session(kms) as session:
            uid = session.create_key()
        with self._session(kms) as session:
            session.tag(uid, PRODUCT_TAGS)
        with self._session(kms) as session:
            self.material[uid] = _material(session.get(uid))
            if session.state(uid) == PRE_ACTIVE:
                session.activate(uid)
        if owner is not None:
            component, name = owner
            with self._session(kms) as session:
                session.tag(
                    uid,
                    (
                        ("x-Identifier", str(uuid.uuid4())),
                        ("x-Component", component),
                        ("x-Name", name),
                    ),
                )
        return uid

    def _get_item(self, kms: Kms, uid: str) -> messages.ResponseBatchItem:
        with self._session(kms) as session:
            response = session.send(
                [session.item(Operation.GET, GetRequest(unique_identifier=uid))],
                expect_success=False,
            )
        return response.batch_items[0]

    def _context(self) -> ssl.SSLContext:
        assert self.ca is not None and self.credentials is not None, "no trust set up yet"
        context = ssl.create_default_context(cafile=str(self.ca))
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # as vCenter 7.0.3 negotiated
        context.load_cert_chain(*self.credentials)
        return context

    def _session(self, kms: Kms) -> _Session:
        return _Session(kms, self._context())


def _eventually(condition: Callable[[], bool], seconds: float = PROPAGATION) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.1)


def _material(payload: Any) -> bytes:
    """The key bytes of a Get answer, checked as vCenter relies on them (Raw AES-256)."""
    material = payload.managed_object.key_block.key_value.key_material
    assert isinstance(material, bytes) and len(material) == 32, payload
    return material


class _Session:
    """One vCenter-style connection: TLS to 127.0.0.1 checked against the KMS's name, then
    DiscoverVersions without a batch item ID (``DV0``) before anything else."""

    def __init__(self, kms: Kms, context: ssl.SSLContext) -> None:
        raw = socket.create_connection(("127.0.0.1", kms.port), timeout=15)
        try:
            sock = context.wrap_socket(raw, server_hostname=kms.name)
        except BaseException:
            raw.close()
            raise
        self.connection = KmipConnection(sock)
        self.session = VCenterSession(self.connection)

    def __enter__(self) -> VCenterSession:
        self.session.dv0()
        return self.session

    def __exit__(self, *exc: object) -> None:
        self.connection.close()


# -- the shell side --------------------------------------------------------------------------


@dataclass
class GuideRun:
    work: Path
    state_dir: Path
    env: dict[str, str]
    vcenter: VCenterStandIn
    background: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)
    ran: int = 0
    last_finished: float = 0.0

    def step(self, step: Step) -> None:
        if isinstance(step, VCenterStep):
            self.vcenter.run(step, self.env)
        elif step.runs:
            self.block(step)

    def block(self, block: Block) -> None:
        reason = block.value("not-run")
        if block.has("not-run"):
            assert reason, f"{block.where}: not-run needs a reason"
            self.not_run.append(f"{block.where}: {reason}")
            return
        wait = block.value("wait-before")
        if wait is not None:
            time.sleep(max(0.0, float(wait) - (time.monotonic() - self.last_finished)))
        if block.has("run-in-background"):
            self.start_background(block)
        else:
            self.run_foreground(block)
        self.ran += 1
        self.last_finished = time.monotonic()

    def run_foreground(self, block: Block) -> None:
        state = self.state_dir / "env"
        state.unlink(missing_ok=True)
        script = self.state_dir / "block.sh"
        script.write_text(f'{block.code}\nenv -0 > "{state}"\n', encoding="utf-8")
        result = subprocess.run(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
        output = result.stdout + result.stderr
        expected = int(block.value("expect-exit") or 0)
        shown = f"{block.where}\n{block.code}--- exit {result.returncode}, output:\n"
        shown += output[-OUTPUT_SHOWN:]
        assert result.returncode == expected, f"expected exit {expected}: {shown}"
        for text in block.values("expect-output"):
            wanted = self.expand(text)
            assert wanted in output, f"expected {wanted!r} in the output: {shown}"
        for pattern in block.values("expect-match"):
            assert re.search(pattern, output, re.MULTILINE), f"expected /{pattern}/: {shown}"
        if state.exists():
            self.keep_exports(state.read_bytes())

    def keep_exports(self, dump: bytes) -> None:
        variables = {}
        for entry in dump.decode("utf-8", "replace").split("\0"):
            name, equals, value = entry.partition("=")
            if equals and name not in SHELL_VARIABLES:
                variables[name] = value
        self.env = variables

    def expand(self, text: str) -> str:
        """``${NAME}`` in an expectation: the variable's value."""
        return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: self.env[m.group(1)], text)

    def start_background(self, block: Block) -> None:
        command = block.code.strip()
        self.stop_background(command)
        ports_annotation = block.value("run-in-background") or ""
        names = ports_annotation.removeprefix("wait-for-ports=").split(",")
        assert ports_annotation.startswith("wait-for-ports=") and all(names), block.where
        ports = [int(self.env[name]) for name in names]
        log = self.state_dir / f"background-{len(self.background)}-{time.monotonic_ns()}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=self.work,
                env={**self.env, "PYTHONUNBUFFERED": "1"},
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background[command] = process
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"{block.where}: {command} exited: {log.read_text()[-OUTPUT_SHOWN:]}")
            if all(_listening(port) for port in ports):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{block.where}: {command} did not open {ports}: {log.read_text()}")
            time.sleep(0.1)

    def stop_background(self, command: str) -> None:
        process = self.background.pop(command, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)  # Ctrl-C / systemctl stop
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)

    def stop_all(self) -> None:
        for command in list(self.background):
            self.stop_background(command)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


# -- the guide's environment, set to this test's setup ---------------------------------------


@pytest.fixture
def remote_keyprotect(tmp_path: Path) -> Iterator[KmipdServer]:
    """A second kmipd whose Key Protect-compatible API holds the remote root keys."""
    with keyprotect_server(tmp_path / "remote-kp") as server:
        yield server


def guide_environment(
    tmp: Path, store_url: str, remote: KmipdServer, token: softhsm.SoftHsmToken
) -> dict[str, str]:
    """Values for the variables of the guide's index (the same names, checked)."""
    return {
        "KMIPD_DATA_DIR": str(tmp / "kms1"),
        "KMIPD_STORE_URL": store_url,
        "KMS1_NAME": "kms1.guide.test",
        "KMS2_NAME": "kms2.guide.test",
        "KMIP_PORT": str(free_port()),
        "HTTPS_PORT": str(free_port()),
        "SAFE_DIR": str(tmp / "safe"),
        "NODE2_RSYNC_TARGET": str(tmp / "kms2") + "/",
        "NODE2_DATA_DIR": str(tmp / "kms2"),
        "NODE2_KMIP_PORT": str(free_port()),
        "NODE2_HTTPS_PORT": str(free_port()),
        "DRILL_DATA_DIR": str(tmp / "drill"),
        "DRILL_KMIP_PORT": str(free_port()),
        "DRILL_HTTPS_PORT": str(free_port()),
        "PKCS11_LIBRARY": token.module,
        "PKCS11_TOKEN_LABEL": token.label,
        "KMIPD_PKCS11_PIN": token.user_pin,
        "KP_URL": remote.https_url,
        "KP_IAM_URL": remote.https_url,
        "KP_INSTANCE_ID": instance_id(remote),
        "KP_CA": str(remote.ca),
        "KMIPD_KEYPROTECT_API_KEY": new_api_key(remote, "Manager", "guide-kms"),
    }


def environment_block() -> Block:
    steps = read_page(GUIDE / "README.md")
    blocks = [s for s in steps if isinstance(s, Block) and s.runs]
    assert len(blocks) == 1 and blocks[0].has("guide-environment"), (
        "the index must hold exactly one sh block, the guide-environment one"
    )
    return blocks[0]


def test_every_command_of_the_operator_guide_runs(
    tmp_path: Path, remote_keyprotect: KmipdServer
) -> None:
    token = softhsm.token()
    work, state_dir, private = tmp_path / "work", tmp_path / "state", tmp_path / "vcenter"
    for directory in (work, state_dir, private):
        directory.mkdir()
    pages = [(page, read_page(page)) for page in guide_pages()]
    with fresh_database("guide") as store_url:
        values = guide_environment(tmp_path, store_url, remote_keyprotect, token)
        assert sorted(exported_names(environment_block())) == sorted(values), (
            "the guide's index and this test must name the same variables"
        )
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("KMIPD_") and not name.startswith("KP_")
        }
        env.update(values)
        run = GuideRun(work, state_dir, env, VCenterStandIn(work, private, env))
        started = time.monotonic()
        try:
            for page, steps in pages:
                for step in steps:
                    run.step(step)
                print(f"{page.name}: done at {time.monotonic() - started:.1f} s")
        finally:
            run.stop_all()
    shell_blocks = sum(1 for _, steps in pages for s in steps if isinstance(s, Block) and s.runs)
    assert run.ran + len(run.not_run) == shell_blocks
    assert run.vcenter.vms and run.vcenter.material
    print(f"ran {run.ran} blocks; not run ({len(run.not_run)}):", *run.not_run, sep="\n  ")


# -- the reader's own rules fail loudly -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```bash\nls\n```\n", "code block in 'bash'"),
        ("```\nls\n```\n", "no language"),
        ("<!-- expect-exit: 1 -->\n\n```sh\nfalse\n```\n", "right above a code block"),
        ("<!-- expect-ouput: x -->\n```sh\ntrue\n```\n", "unknown annotation"),
        ("<!-- expect-exit: 1 -->\n```text\nx\n```\n", "is not run"),
        ("```sh\ntrue\n", "never closed"),
    ],
)
def test_guide_conventions_are_enforced(tmp_path: Path, text: str, message: str) -> None:
    page = tmp_path / "99-page.md"
    page.write_text(text, encoding="utf-8")
    with pytest.raises(GuideError, match=re.escape(message)):
        read_page(page)


def test_every_page_reads() -> None:
    """Each page follows the conventions, and each has commands that run."""
    for page in guide_pages():
        blocks = [s for s in read_page(page) if isinstance(s, Block) and s.runs]
        assert any(not b.has("not-run") for b in blocks), f"{page.name} runs no command"


def test_the_runner_checks_exit_codes_and_outputs_and_keeps_exports(tmp_path: Path) -> None:
    """The runner fails a block that exits otherwise or shows something else than annotated,
    and carries exported variables from one block to the next, as one terminal would."""
    page = tmp_path / "01-page.md"
    page.write_text(
        "<!-- expect-output: hello -->\n```sh\nexport GREETING=hello\necho $GREETING\n```\n"
        '<!-- expect-match: ^hello again$ -->\n```sh\necho "$GREETING again"\n```\n'
        "<!-- expect-exit: 3 -->\n```sh\nexit 3\n```\n"
        "<!-- expect-output: goodbye -->\n```sh\necho hello\n```\n"
        "```sh\nfalse\necho not reached\n```\n"
        '```sh\necho "$UNSET_VARIABLE"\n```\n',
        encoding="utf-8",
    )
    blocks = [step for step in read_page(page) if isinstance(step, Block)]
    env = {"PATH": os.environ["PATH"]}
    run = GuideRun(tmp_path, tmp_path, env, VCenterStandIn(tmp_path, tmp_path, env))
    for block in blocks[:3]:
        run.block(block)
    assert run.env["GREETING"] == "hello" and run.ran == 3
    for block, message in zip(
        blocks[3:], ("expected 'goodbye'", "expected exit 0", "expected exit 0"), strict=True
    ):
        with pytest.raises(AssertionError, match=re.escape(message)):
            run.block(block)
