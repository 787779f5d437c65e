"""``kmipd ttlv``: decode to a listing, XML or JSON; encode back; precise errors."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from kmipd.cli.main import main
from tests.support.shared import VCENTER_CAPTURE, require


@pytest.fixture
def get_response_hex() -> str:
    conversation = json.loads(
        (require(VCENTER_CAPTURE) / "conversation.json").read_text(encoding="utf-8")
    )
    return next(
        m["hex"] for m in conversation if m["operation"] == ["Get"] and m["direction"] == "response"
    )


def run(argv: list[str], stdin: bytes, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code = main(argv)
    finally:
        sys.stdin = old
    out, err = capsys.readouterr()
    return code, out, err


def test_decode_listing_names_tags_and_enumerations(
    get_response_hex: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["ttlv", "decode"], get_response_hex.encode(), capsys)
    assert code == 0
    assert out.splitlines()[0] == "ResponseMessage"
    assert "    Operation (Enumeration): Get" in out
    assert "          KeyFormatType (Enumeration): Raw" in out
    assert "CryptographicLength (Integer): 256" in out


@pytest.mark.parametrize("form", ["xml", "json"])
def test_decode_then_encode_is_byte_exact(
    form: str, get_response_hex: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text, _ = run(["ttlv", "decode", "--to", form], get_response_hex.encode(), capsys)
    assert code == 0
    code, out, _ = run(["ttlv", "encode", "--from", form], text.encode(), capsys)
    assert code == 0
    assert out.strip() == get_response_hex


def test_binary_file_input(
    get_response_hex: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "message.bin"
    path.write_bytes(bytes.fromhex(get_response_hex))
    code, out, _ = run(["ttlv", "decode", str(path), "--to", "json"], b"", capsys)
    assert code == 0
    assert json.loads(out)["tag"] == "ResponseMessage"


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["ttlv", "decode"], b"4200", "not a valid TTLV message"),
        (["ttlv", "decode", "--hex"], b"zz", "not valid hex"),
        (["ttlv", "decode", "/nonexistent/file"], b"", "cannot read /nonexistent/file"),
        (["ttlv", "encode", "--from", "xml"], b"<Nope/>", "not a valid KMIP XML message"),
        (["ttlv", "encode", "--from", "json"], b"{", "not a valid KMIP JSON message"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], stdin: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, stdin, capsys)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
