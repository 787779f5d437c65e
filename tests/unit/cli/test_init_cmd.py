"""``kmipd init``: the data directory of the start-up contract, never overwritten."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from kmipd import config
from kmipd.cli.main import main


def test_init_lays_out_the_data_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["init", "--data-dir", str(data), "--kmip-port", "15696"]) == 0
    assert "set up" in capsys.readouterr().out
    for secret in (
        "pki/ca-key.pem",
        "pki/server-key.pem",
        "clients/default/client-key.pem",
        "admin-api-key",
    ):
        assert (data / secret).stat().st_mode & 0o777 == 0o600, secret
    assert len((data / "admin-api-key").read_text().strip()) >= 40
    assert len((data / "keyprotect-instance-id").read_text().strip()) == 36
    settings = config.load(data)
    assert settings.kmip.port == 15696
    assert settings.https.port == 8443
    # The client and server certificates chain to the CA clients are told to trust.
    context = ssl.create_default_context(cafile=str(data / "pki" / "ca.pem"))
    context.load_cert_chain(
        data / "clients/default/client.pem", data / "clients/default/client-key.pem"
    )


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--data-dir", str(tmp_path)]) == 0
    before = (tmp_path / "admin-api-key").read_bytes()
    assert main(["init", "--data-dir", str(tmp_path)]) == 1
    assert "left unchanged" in capsys.readouterr().err
    assert main(["init", "--data-dir", str(tmp_path), "--exist-ok"]) == 0
    assert (tmp_path / "admin-api-key").read_bytes() == before


def test_config_errors_say_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="run 'kmipd init"):
        config.load(tmp_path)
    (tmp_path / "kmipd.toml").write_text("[kmip]\nport = 'x'\n")
    with pytest.raises(config.ConfigError, match=r"kmip\.port must be of type int"):
        config.load(tmp_path)
    (tmp_path / "kmipd.toml").write_text("[kmip]\nprot = 1\n")
    with pytest.raises(config.ConfigError, match=r"unknown setting kmip\.prot"):
        config.load(tmp_path)


def test_server_names_are_added_to_the_local_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    names = ["kms1.example.com", "10.0.0.5"]
    assert main(["init", "--data-dir", str(data), *(f"--server-name={n}" for n in names)]) == 0
    certificate = x509.load_pem_x509_certificate((data / "pki" / "server.pem").read_bytes())
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == "kms1.example.com"
    alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    dns = alternative.value.get_values_for_type(x509.DNSName)
    ips = {str(ip) for ip in alternative.value.get_values_for_type(x509.IPAddress)}
    assert {"kms1.example.com", "localhost"} <= set(dns)
    assert {"10.0.0.5", "127.0.0.1", "::1"} <= ips
