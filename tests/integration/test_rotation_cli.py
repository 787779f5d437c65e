"""``kmipd instance rotate|rewrap|retire|schedule`` against a real server: output, ``--json``
and exit codes; the rotation schedule rotates an instance in the background."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import kmip
from tests.support.cli import Cli
from tests.support.server import KmipdServer, init_server

OBJECTS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    server = init_server(Path(tmp_path_factory.mktemp("kmipd")) / "data")
    # One object per batch, half a second apart: the job takes a while, long enough to see
    # a retirement refused while objects still use the old version.
    server.configure(
        rewrap={
            "batch_size": 1,
            "pause": 0.5,
            "poll_seconds": 0.2,
            "retire_grace": 0.0,
            "schedule_check_seconds": 0.2,
        }
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cli(server: KmipdServer, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(server, capsys)


def test_rotate_rewrap_retire(cli: Cli, server: KmipdServer) -> None:
    keys = {}
    for _ in range(OBJECTS):
        uid = kmip.created_uid(server.call(kmip.create_aes()))
        keys[uid] = kmip.key_material(server.call(kmip.get(uid)))
    job = cli.json("instance", "rewrap", "default", "--status")
    assert job["state"] == "idle" and job["current_version"] == 1
    assert job["objects_on_target"] == OBJECTS

    code, out, err = cli("instance", "rotate", "default")
    assert code == 0, err
    assert out.startswith("rotated instance default: root key ")
    assert "wrapping key version 2" in out and "re-wrap job has started" in out
    # Objects still use version 1 while the job runs: retiring it is refused.
    code, out, err = cli("instance", "retire", "default", "1")
    assert code == 1 and out == ""
    assert "still sealed under version 1" in err and err.count("\n") == 1
    code, out, _ = cli("instance", "rewrap", "default", "--status")
    assert code == 0 and "(running)" in out and "v1: " in out and "v2: " in out

    job = cli.json("instance", "rewrap", "default", "--wait")
    assert job["state"] == "done" and job["error"] is None, job
    assert job["objects_remaining"] == 0 and job["objects_on_target"] == OBJECTS
    assert job["percent"] == 100.0 and job["target_version"] == 2
    code, out, err = cli("instance", "rewrap", "default", "--status")
    assert code == 0, err
    assert "100.00%" in out and "(done)" in out
    assert "v1: 0, v2: 4 (current)" in out
    assert "error" not in out

    # Unused now, and the grace is 0: retired.
    assert cli.json("instance", "retire", "default", "1") == {"retired": 1, "instance": "default"}
    code, _, err = cli("instance", "retire", "default", "1")
    assert code == 3 and "no wrapping key 1" in err
    code, _, err = cli("instance", "retire", "default", "2")
    assert code == 1 and "newest wrapping key" in err
    versions = cli.json("instance", "rewrap", "default", "--status")["wrapping_keys"]
    assert [v["version"] for v in versions] == [2]
    for uid, material in keys.items():
        assert kmip.key_material(server.call(kmip.get(uid))) == material

    # Running the job again is harmless; --wait in text mode ends with its summary.
    code, out, err = cli("instance", "rewrap", "default", "--wait")
    assert code == 0, err
    assert "(done)" in out and "v2: 4 (current)" in out

    code, _, err = cli("instance", "rotate", "missing")
    assert code == 3 and "no instance named 'missing'" in err
    code, _, err = cli("instance", "rewrap", "missing", "--status")
    assert code == 3
    code, _, err = cli("instance", "retire", "default", "0")
    assert code != 0


def test_schedule(cli: Cli, server: KmipdServer) -> None:
    assert cli("instance", "create", "sched")[0] == 0
    shown = cli.json("instance", "show", "sched")
    assert shown["rotation_days"] is None and shown["last_rotated"] is None
    code, out, _ = cli("instance", "show", "sched")
    assert code == 0 and "not scheduled" in out

    # Usage errors and an unknown instance.
    assert cli("instance", "schedule", "sched")[0] == 2
    assert cli("instance", "schedule", "sched", "--off", "--every-days", "1")[0] == 2
    code, _, err = cli("instance", "schedule", "sched", "--every-days", "0")
    assert code == 2 and "more than 0" in err
    code, _, err = cli("instance", "schedule", "missing", "--every-days", "1")
    assert code == 3 and "no instance named 'missing'" in err

    # Every second (a fraction of a day): the background check rotates it.
    every = 1.0 / 86400
    code, out, err = cli("instance", "schedule", "sched", "--every-days", repr(every))
    assert code == 0, err
    assert out.startswith("instance sched: keys rotated every")
    deadline = time.monotonic() + 10
    while True:
        shown = cli.json("instance", "show", "sched")
        if shown["last_rotated"] is not None:
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    assert shown["rotation_days"] == every
    job = cli.json("instance", "rewrap", "sched", "--wait")
    assert job["state"] == "done" and job["current_version"] >= 1
    code, out, _ = cli("instance", "show", "sched")
    assert "every " in out and "(last " in out

    off = cli.json("instance", "schedule", "sched", "--off")
    assert off["name"] == "sched" and off["rotation_days"] is None
    code, out, _ = cli("instance", "schedule", "sched", "--off")
    assert code == 0 and out == "instance sched: scheduled rotation off\n"
    time.sleep(0.5)  # a check or two
    stopped = cli.json("instance", "rewrap", "sched", "--status")["current_version"]
    time.sleep(1.5)
    assert cli.json("instance", "rewrap", "sched", "--status")["current_version"] == stopped
