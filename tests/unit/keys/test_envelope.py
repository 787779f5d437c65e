"""Sealed material opens only with its key, in its own slot."""

from __future__ import annotations

import pytest

from kmipd.keys import envelope


def test_seal_round_trip_and_version() -> None:
    key = envelope.new_key()
    blob = envelope.seal(key, 7, "default", "uid-1", b"material")
    assert envelope.sealed_version(blob) == 7
    assert envelope.unseal(key, "default", "uid-1", blob) == b"material"
    assert b"material" not in blob


@pytest.mark.parametrize(
    ("instance", "uid"), [("other", "uid-1"), ("default", "uid-2"), ("defaultu", "id-1")]
)
def test_a_blob_moved_to_another_slot_does_not_open(instance: str, uid: str) -> None:
    key = envelope.new_key()
    blob = envelope.seal(key, 1, "default", "uid-1", b"material")
    with pytest.raises(envelope.SealError):
        envelope.unseal(key, instance, uid, blob)


def test_wrong_key_tampering_and_garbage_fail_the_same_way() -> None:
    key = envelope.new_key()
    blob = envelope.seal(key, 1, "default", "uid-1", b"material")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    relabelled = blob[:1] + (2).to_bytes(4, "big") + blob[5:]
    for bad_key, bad_blob in [
        (envelope.new_key(), blob),
        (key, tampered),
        (key, relabelled),
        (key, b"short"),
    ]:
        with pytest.raises(envelope.SealError):
            envelope.unseal(bad_key, "default", "uid-1", bad_blob)
