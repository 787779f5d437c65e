"""Runs ``kmipd`` sub-commands in-process against a test server, capturing their output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kmipd.cli.main import main
from tests.support.server import KmipdServer


class Cli:
    """``cli("instance", "list")`` runs ``kmipd [prefix...] instance list --data-dir DIR``;
    it returns (exit code, stdout, stderr)."""

    def __init__(
        self, server: KmipdServer, capsys: pytest.CaptureFixture[str], *prefix: str
    ) -> None:
        self.server = server
        self.capsys = capsys
        self.prefix = prefix

    def __call__(self, *argv: str, connect: bool = True) -> tuple[int, str, str]:
        extra = ["--data-dir", str(self.server.data_dir)] if connect else []
        self.capsys.readouterr()
        try:
            code = main([*self.prefix, *argv, *extra])
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)
