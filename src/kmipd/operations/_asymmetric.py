"""Register of Private and Public Keys: RSA and EC material in a format kmipd reads must be
the key its format says, and the Cryptographic Algorithm and Length must describe it (they
are set from it if absent). Keys kmipd does not read (DSA, DH, Ed25519, other curves, Opaque
or wrapped material) are stored as given, as before: Get returns them in their own format."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa

from kmipd.keys import asymmetric, rsa_worker
from kmipd.model.attribute_set import AttributeSet
from kmipd.protocol._generated import CryptographicAlgorithm, ResultReason
from kmipd.protocol.objects import PrivateKey, PublicKey
from kmipd.protocol.ttlv import ENUMERATION, INTEGER
from kmipd.service.errors import KmipError


async def check_registered_key(body: PrivateKey | PublicKey, stored: AttributeSet) -> None:
    """Refuse RSA or EC material that is malformed or contradicts ``stored``; complete
    ``stored`` from it."""
    block = body.key_block
    if block is None or block.key_wrapping_data is not None:
        return
    try:
        # An RSA private key is parsed here and checked in a worker (below).
        key: asymmetric.PrivateKeyObject | asymmetric.PublicKeyObject = (
            asymmetric.load_private(block, checked=True)
            if isinstance(body, PrivateKey)
            else asymmetric.load_public(block)
        )
    except asymmetric.KeyMaterialError as exc:
        raise KmipError(ResultReason.INVALID_FIELD, str(exc)) from None
    except asymmetric.KeyFormatError:
        return  # not a key kmipd reads: kept as given
    if isinstance(key, rsa.RSAPrivateKey) and not await rsa_worker.is_consistent(key):
        raise KmipError(
            ResultReason.INVALID_FIELD, "the RSA private key's numbers are inconsistent"
        )
    description = asymmetric.describe(key)
    algorithm = stored.value("Cryptographic Algorithm")
    if algorithm is None:
        family = CryptographicAlgorithm.RSA if description.is_rsa else CryptographicAlgorithm.EC
        stored.set("Cryptographic Algorithm", family, ENUMERATION)
    elif not asymmetric.algorithm_matches(algorithm, description):
        raise KmipError(
            ResultReason.INVALID_FIELD,
            "the Cryptographic Algorithm does not match the key material "
            f"(an {'RSA' if description.is_rsa else 'EC'} key)",
        )
    length = stored.value("Cryptographic Length")
    if length is None:
        stored.set("Cryptographic Length", description.length, INTEGER)
    elif length != description.length:
        raise KmipError(
            ResultReason.INVALID_FIELD,
            f"the Cryptographic Length does not match the key material ({description.length})",
        )
