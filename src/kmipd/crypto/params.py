"""Cryptographic Parameters (KMIP 1.4 §2.1.5, 2.1 §7.6) as a plain value.

A request's parameters override, field by field, the ones the key carries as its
Cryptographic Parameters attribute (KMIP 2.1 §6.1.18: "if omitted, the server uses the
Cryptographic Parameters attribute of the key").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kmipd.protocol._generated import Tag
from kmipd.protocol.ttlv import BOOLEAN, BYTE_STRING, ENUMERATION, INTEGER, STRUCTURE, Item

from .errors import bad_parameters, unsupported


@dataclass(frozen=True, slots=True)
class CryptoParams:
    block_cipher_mode: int | None = None
    padding_method: int | None = None
    hashing_algorithm: int | None = None
    digital_signature_algorithm: int | None = None
    cryptographic_algorithm: int | None = None
    random_iv: bool | None = None
    iv_length: int | None = None
    tag_length: int | None = None
    counter_length: int | None = None
    initial_counter_value: int | None = None
    salt_length: int | None = None
    mask_generator: int | None = None
    mask_generator_hashing_algorithm: int | None = None
    p_source: bytes | None = None

    def over(self, fallback: CryptoParams) -> CryptoParams:
        """These parameters, with ``fallback``'s wherever these leave a field out."""
        changes = {
            f.name: getattr(fallback, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is None
        }
        return dataclasses.replace(self, **changes)


# Tag → (field name, item type) of the children kmipd acts on. Key Role Type only describes
# the key; any other field (Fixed/Invocation Field Length, Trailer Field...) is refused as
# not supported rather than silently ignored.
_FIELDS: dict[int, tuple[str, int]] = {
    Tag.BLOCK_CIPHER_MODE: ("block_cipher_mode", ENUMERATION),
    Tag.PADDING_METHOD: ("padding_method", ENUMERATION),
    Tag.HASHING_ALGORITHM: ("hashing_algorithm", ENUMERATION),
    Tag.DIGITAL_SIGNATURE_ALGORITHM: ("digital_signature_algorithm", ENUMERATION),
    Tag.CRYPTOGRAPHIC_ALGORITHM: ("cryptographic_algorithm", ENUMERATION),
    Tag.RANDOM_IV: ("random_iv", BOOLEAN),
    Tag.IV_LENGTH: ("iv_length", INTEGER),
    Tag.TAG_LENGTH: ("tag_length", INTEGER),
    Tag.COUNTER_LENGTH: ("counter_length", INTEGER),
    Tag.INITIAL_COUNTER_VALUE: ("initial_counter_value", INTEGER),
    Tag.SALT_LENGTH: ("salt_length", INTEGER),
    Tag.MASK_GENERATOR: ("mask_generator", ENUMERATION),
    Tag.MASK_GENERATOR_HASHING_ALGORITHM: ("mask_generator_hashing_algorithm", ENUMERATION),
    Tag.P_SOURCE: ("p_source", BYTE_STRING),
}

_IGNORED = frozenset({Tag.KEY_ROLE_TYPE})


def parse(item: Item | None) -> CryptoParams:
    """The parameters of a Cryptographic Parameters structure (None: no parameters)."""
    if item is None:
        return CryptoParams()
    if item.type != STRUCTURE:
        raise bad_parameters("Cryptographic Parameters must be a structure")
    values: dict[str, object] = {}
    for child in item.value:
        known = _FIELDS.get(child.tag)
        if known is None:
            if child.tag in _IGNORED:
                continue
            raise unsupported(f"Cryptographic Parameters field 0x{child.tag:06X} is not supported")
        name, typ = known
        if child.type != typ:
            raise bad_parameters(f"Cryptographic Parameters field {name} has the wrong type")
        if name in values:
            raise bad_parameters(f"Cryptographic Parameters field {name} is given twice")
        values[name] = child.value
    return CryptoParams(**values)  # type: ignore[arg-type]
