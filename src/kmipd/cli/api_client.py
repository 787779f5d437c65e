"""How the administration commands reach a kmipd: its management API over HTTPS.

The commands never open the database. Connection settings, most specific first:

- URL: ``--url``, env ``KMIPD_URL``, else ``https://127.0.0.1:<https.port>`` from
  ``DIR/kmipd.toml`` (``--data-dir`` or env ``KMIPD_DATA_DIR``);
- API key: ``--api-key``, env ``KMIPD_API_KEY``, else ``DIR/admin-api-key``;
- CA to verify the server: ``--ca``, else ``DIR/pki/ca.pem``, else the system's CAs.

Output: human tables, or the API's JSON with ``--json``. Exit codes: 0 ok, 1 the server
refused or failed, 2 bad usage, 3 not found, 4 not authenticated or not allowed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import ssl
import sys
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmipd import config
from kmipd.cli.errors import EXIT_AUTH, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, CommandError

API_KEY_FILE = "admin-api-key"
DEFAULT_TIMEOUT = 30.0


def connection_options() -> argparse.ArgumentParser:
    """The options every administration command takes (an argparse parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("KMIPD_DATA_DIR") or None,
        help="a kmipd data directory: its URL, admin API key and CA (env KMIPD_DATA_DIR)",
    )
    group.add_argument("--url", help="https://HOST:PORT of kmipd's HTTPS port (env KMIPD_URL)")
    group.add_argument("--api-key", help="API key (env KMIPD_API_KEY; else DIR/admin-api-key)")
    group.add_argument("--ca", type=Path, help="CA certificate to verify the server (PEM)")
    group.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds")
    group.add_argument("--json", action="store_true", help="print the API's JSON reply")
    return parent


@dataclass
class ApiClient:
    url: str
    api_key: str | None
    context: ssl.SSLContext
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, need_key: bool = True) -> ApiClient:
        data_dir: Path | None = args.data_dir
        settings = _settings(data_dir) if data_dir is not None else None
        url = args.url or os.environ.get("KMIPD_URL")
        if not url:
            if settings is None:
                raise CommandError(
                    "say which kmipd to manage: --url https://HOST:PORT or --data-dir DIR",
                    EXIT_USAGE,
                )
            host = settings.https.host
            host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
            url = f"https://{_bracket(host)}:{settings.https.port}"
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "https" or not parsed.hostname:
            raise CommandError(f"--url must look like https://HOST:PORT, not {url!r}", EXIT_USAGE)
        api_key = args.api_key or os.environ.get("KMIPD_API_KEY")
        if not api_key and data_dir is not None:
            try:
                api_key = (data_dir / API_KEY_FILE).read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise CommandError(
                    f"cannot read {data_dir / API_KEY_FILE}: {exc.strerror}; "
                    "pass --api-key or set KMIPD_API_KEY",
                    EXIT_USAGE,
                ) from None
        if need_key and not api_key:
            raise CommandError(
                "no API key: pass --api-key, set KMIPD_API_KEY, or use --data-dir DIR "
                f"(DIR/{API_KEY_FILE})",
                EXIT_USAGE,
            )
        ca: Path | None = args.ca
        if ca is None and settings is not None:
            ca = settings.path(settings.tls.ca)
        context = ssl.create_default_context()
        if getattr(args, "insecure", False):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif ca is not None:
            try:
                context = ssl.create_default_context(cafile=str(ca))
            except (OSError, ssl.SSLError):
                raise CommandError(
                    f"cannot read the CA certificate {ca}; pass --ca with kmipd's ca.pem",
                    EXIT_USAGE,
                ) from None
        return cls(url.rstrip("/"), api_key, context, args.timeout)

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: Sequence[tuple[str, Any]] = (),
        *,
        raw: bool = False,
        headers: Mapping[str, str] | None = None,
        on_error: Callable[[int, bytes], CommandError] | None = None,
    ) -> Any:
        """The reply's JSON (or text with ``raw``); CommandError on any failure. ``headers``
        are sent as well; ``on_error`` turns an error reply into the CommandError (the Key
        Protect API has its own error bodies)."""
        query = urllib.parse.urlencode([(k, v) for k, v in params if v is not None])
        parsed = urllib.parse.urlsplit(self.url)
        target = parsed.path.rstrip("/") + path + (f"?{query}" if query else "")
        sent = {"Accept": "application/json", **(headers or {})}
        if self.api_key:
            sent["Authorization"] = f"Bearer {self.api_key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            sent["Content-Type"] = "application/json"
        connection = http.client.HTTPSConnection(
            parsed.hostname or "", parsed.port or 443, timeout=self.timeout, context=self.context
        )
        try:
            connection.request(method, target, body=data, headers=sent)
            response = connection.getresponse()
            payload = response.read()
        except ssl.SSLCertVerificationError as exc:
            raise CommandError(
                f"cannot verify the server at {self.url} ({exc.verify_message}); pass --ca "
                "with kmipd's CA certificate (DIR/pki/ca.pem) or --data-dir DIR"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise CommandError(
                f"cannot reach kmipd at {self.url}: {reason}; is 'kmipd serve' running there?"
            ) from None
        finally:
            connection.close()
        if response.status >= 400:
            raise (on_error or _error)(response.status, payload)
        if raw:
            return payload.decode("utf-8", "replace")
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise CommandError(f"{self.url} did not answer with JSON; is it kmipd?") from None


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _settings(data_dir: Path) -> config.Settings:
    try:
        return config.load(data_dir)
    except config.ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _error(status: int, payload: bytes) -> CommandError:
    try:
        error = json.loads(payload)["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        message = f"the server answered HTTP {status}"
    if status == 401:
        return CommandError(
            f"{message} (pass --api-key, set KMIPD_API_KEY, or use --data-dir DIR)", EXIT_AUTH
        )
    if status == 403:
        return CommandError(f"{message}; use an API key with that role", EXIT_AUTH)
    if status == 404:
        return CommandError(message, EXIT_NOT_FOUND)
    return CommandError(message, EXIT_FAILED)


# -- output ----------------------------------------------------------------------------------


def when(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def short(fingerprint: str | None, size: int = 16) -> str:
    if not fingerprint:
        return "-"
    return fingerprint if len(fingerprint) <= size else fingerprint[:size] + "…"


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def print_table(rows: list[list[str]], headers: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    for row in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_fields(pairs: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key.ljust(width)}  {'-' if value is None or value == '' else value}")


def read_input(path: Path) -> str:
    """A PEM file's text, or standard input for ``-``."""
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise CommandError(f"{path} does not exist", EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path} as PEM text: {exc}", EXIT_USAGE) from None


def write_output(path: Path, data: str, *, private: bool = False) -> None:
    """Write a file; a private one is created with mode 0600 and never overwritten."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if private else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600 if private else 0o644)
    except FileExistsError:
        raise CommandError(f"{path} exists; choose another file", EXIT_USAGE) from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}", EXIT_USAGE) from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(data)
