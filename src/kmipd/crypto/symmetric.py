"""Symmetric encryption: AES (ECB, CBC, CTR, GCM, XTS), Triple DES (ECB, CBC), ChaCha20 and
ChaCha20-Poly1305, with PKCS#5 padding or none."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding, poly1305
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kmipd.protocol._generated import (
    BlockCipherMode,
    CryptographicAlgorithm,
    PaddingMethod,
    ResultReason,
)

from .errors import CryptoError, bad_parameters, failed, unsupported
from .params import CryptoParams

Mode = BlockCipherMode
Alg = CryptographicAlgorithm

_BLOCK_BITS = {Alg.AES: 128, Alg.DES3: 64}
_MODES = {
    Alg.AES: frozenset({Mode.ECB, Mode.CBC, Mode.CTR, Mode.GCM, Mode.XTS}),
    Alg.DES3: frozenset({Mode.ECB, Mode.CBC}),
}
_PADDED_MODES = frozenset({Mode.ECB, Mode.CBC})
_DEFAULT_TAG_LENGTH = 16
_GCM_IV_BYTES = 12
_CHACHA_NONCE_BYTES = 12


@dataclass(frozen=True, slots=True)
class Sealed:
    """The output of :func:`encrypt`: the ciphertext, the IV when the server chose it, and
    the authentication tag of an AEAD mode."""

    data: bytes
    iv: bytes | None = None
    tag: bytes | None = None


def encrypt(
    algorithm: int,
    key: bytes,
    params: CryptoParams,
    data: bytes,
    iv: bytes | None,
    aad: bytes | None,
) -> Sealed:
    algorithm = _algorithm(algorithm, params)
    if algorithm in (Alg.CHACHA20, Alg.CHACHA20POLY1305):
        chosen = None
        if params.random_iv:
            _no_iv_with_random_iv(iv)
            iv = chosen = secrets.token_bytes(_random_iv_bytes(algorithm, params))
        if algorithm == Alg.CHACHA20:
            _no_aead_fields(aad, None)
            return Sealed(_chacha20(key, _require_iv(iv), data), chosen)
        data, tag = _chacha20_poly1305_seal(key, params, data, _require_iv(iv), aad or b"")
        return Sealed(data, chosen, tag)
    stream = begin(algorithm, key, params, iv, aad, encrypting=True)
    head = stream.update(data)
    tail = stream.finish(None)
    return Sealed(head + tail.data, tail.iv, tail.tag)


def decrypt(
    algorithm: int,
    key: bytes,
    params: CryptoParams,
    data: bytes,
    iv: bytes | None,
    aad: bytes | None,
    tag: bytes | None,
) -> bytes:
    algorithm = _algorithm(algorithm, params)
    if algorithm == Alg.CHACHA20POLY1305:
        return _chacha20_poly1305_open(key, params, data, _require_iv(iv), aad or b"", tag)
    if algorithm == Alg.CHACHA20:
        _no_aead_fields(aad, tag)
        return _chacha20(key, _require_iv(iv), data)
    stream = begin(algorithm, key, params, iv, aad, encrypting=False)
    head = stream.update(data)
    return head + stream.finish(tag).data


class CipherStream:
    """One AES or Triple DES encryption or decryption, fed in parts: :meth:`update` per
    part, :meth:`finish` after the last (KMIP Init Indicator ... Final Indicator)."""

    def __init__(
        self,
        context: Any,
        *,
        encrypting: bool,
        block_bits: int,
        padded: bool,
        tag_length: int | None,
        chosen_iv: bytes | None,
    ) -> None:
        self._context = context
        self._encrypting = encrypting
        self._tag_length = tag_length
        self._chosen_iv = chosen_iv
        self._padder = None
        if padded:
            pkcs7 = padding.PKCS7(block_bits)
            self._padder = pkcs7.padder() if encrypting else pkcs7.unpadder()

    @property
    def chosen_iv(self) -> bytes | None:
        """The IV the server chose (Random IV), to give the client with the first part."""
        return self._chosen_iv

    def update(self, data: bytes) -> bytes:
        try:
            if self._encrypting:
                if self._padder is not None:
                    data = self._padder.update(data)
                return self._context.update(data)  # type: ignore[no-any-return]
            out = self._context.update(data)
            return self._padder.update(out) if self._padder is not None else out
        except ValueError as exc:
            raise bad_parameters(f"the data does not suit the mode: {exc}") from None

    def finish(self, tag: bytes | None) -> Sealed:
        """The last output; for encryption also the IV the server chose and the tag."""
        if self._encrypting:
            if tag is not None:
                raise bad_parameters("an Authenticated Encryption Tag is only given to decrypt")
            out = self.update(b"") if self._padder is None else self._pad_tail()
            out += self._final()
            produced = self._context.tag[: self._tag_length] if self._tag_length else None
            return Sealed(out, self._chosen_iv, produced)
        if self._tag_length is None:
            if tag is not None:
                raise bad_parameters("an Authenticated Encryption Tag applies to GCM only")
            out = self._final()
        else:
            if tag is None or len(tag) != self._tag_length:
                raise bad_parameters(
                    f"GCM decryption needs the {self._tag_length}-byte Authenticated Encryption Tag"
                )
            try:
                out = self._context.finalize_with_tag(tag)
            except InvalidTag:
                raise failed("the authentication tag does not match") from None
        if self._padder is None:
            return Sealed(out)
        try:
            return Sealed(self._padder.update(out) + self._padder.finalize())
        except ValueError:
            raise failed("the decrypted data does not end in valid PKCS#5 padding") from None

    def _pad_tail(self) -> bytes:
        assert self._padder is not None
        return self._context.update(self._padder.finalize())  # type: ignore[no-any-return]

    def _final(self) -> bytes:
        try:
            return self._context.finalize()  # type: ignore[no-any-return]
        except ValueError:
            raise bad_parameters(
                "the data is not a whole number of blocks: ask for PKCS5 padding"
            ) from None


def begin(
    algorithm: int,
    key: bytes,
    params: CryptoParams,
    iv: bytes | None,
    aad: bytes | None,
    *,
    encrypting: bool,
    multipart: bool = False,
) -> CipherStream:
    """Start an AES or Triple DES operation. ``multipart``: the data will come in several
    parts (XTS cannot be split)."""
    algorithm = _algorithm(algorithm, params)
    if algorithm not in _MODES:
        raise unsupported("multi-part encryption supports AES and Triple DES only")
    mode = _mode(algorithm, params)
    if multipart and mode == Mode.XTS:
        raise unsupported("XTS data cannot be sent in parts")
    chosen = None
    if encrypting and params.random_iv:
        _no_iv_with_random_iv(iv)
        iv = chosen = secrets.token_bytes(_random_iv_bytes(algorithm, params))
    tag_length = None
    if mode == Mode.GCM:
        tag_length = _tag_length(params)
        gcm = modes.GCM(_gcm_iv(iv), min_tag_length=tag_length)
        cipher = _cipher(algorithm, key, gcm)
        context = cipher.encryptor() if encrypting else cipher.decryptor()
        if aad:
            context.authenticate_additional_data(aad)
    else:
        _no_aead_fields(aad, None)
        cipher = _cipher(algorithm, key, _plain_mode(algorithm, mode, iv))
        context = cipher.encryptor() if encrypting else cipher.decryptor()
    return CipherStream(
        context,
        encrypting=encrypting,
        block_bits=_BLOCK_BITS[algorithm],
        padded=mode in _PADDED_MODES and params.padding_method == PaddingMethod.PKCS5,
        tag_length=tag_length,
        chosen_iv=chosen,
    )


def _no_iv_with_random_iv(iv: bytes | None) -> None:
    if iv is not None:
        raise bad_parameters("Random IV is set and an IV/Counter/Nonce is given: give one")


def _algorithm(key_algorithm: int, params: CryptoParams) -> int:
    wanted = params.cryptographic_algorithm
    if wanted is not None and wanted != key_algorithm:
        raise bad_parameters("the Cryptographic Algorithm asked for is not the key's")
    if key_algorithm not in (*_MODES, Alg.CHACHA20, Alg.CHACHA20POLY1305):
        raise unsupported("encryption with this key's Cryptographic Algorithm is not supported")
    if params.padding_method not in (None, PaddingMethod.NONE, PaddingMethod.PKCS5):
        raise unsupported("only PKCS5 padding or none is supported for symmetric keys")
    return key_algorithm


def _mode(algorithm: int, params: CryptoParams) -> int:
    mode = params.block_cipher_mode
    if mode is None:
        raise bad_parameters(
            "no Block Cipher Mode: give one in Cryptographic Parameters (request or key)"
        )
    if mode not in _MODES[algorithm]:
        raise unsupported("this Block Cipher Mode is not supported for the key's algorithm")
    if params.padding_method == PaddingMethod.PKCS5 and mode not in _PADDED_MODES:
        raise bad_parameters("PKCS5 padding applies to ECB and CBC only")
    return mode


def _cipher(algorithm: int, key: bytes, mode: modes.Mode) -> Cipher:  # type: ignore[type-arg]
    try:
        if algorithm == Alg.DES3:
            if len(key) not in (16, 24):  # TripleDES would take 8 bytes as single DES
                raise bad_parameters("a Triple DES key is 16 or 24 bytes")
            return Cipher(TripleDES(key), mode)
        return Cipher(algorithms.AES(key), mode)
    except ValueError:
        raise bad_parameters("the key length does not suit the algorithm and mode") from None


def _plain_mode(algorithm: int, mode: int, iv: bytes | None) -> modes.Mode:
    if mode == Mode.ECB:
        if iv is not None:
            raise bad_parameters("ECB takes no IV/Counter/Nonce")
        return modes.ECB()
    block = _BLOCK_BITS[algorithm] // 8
    iv = _require_iv(iv)
    if len(iv) != block:
        raise bad_parameters(f"the IV/Counter/Nonce must be {block} bytes")
    if mode == Mode.CBC:
        return modes.CBC(iv)
    if mode == Mode.CTR:
        return modes.CTR(iv)
    return modes.XTS(iv)


def _require_iv(iv: bytes | None) -> bytes:
    if iv is None:
        # The CS-BC profile answers a missing IV with Invalid Message (CS-BC-M-11..13).
        raise CryptoError(
            ResultReason.INVALID_MESSAGE,
            "this mode needs an IV/Counter/Nonce: send one, or set Random IV when encrypting",
        )
    return iv


def _gcm_iv(iv: bytes | None) -> bytes:
    iv = _require_iv(iv)
    if not 8 <= len(iv) <= 128:
        raise bad_parameters("a GCM IV must be 8 to 128 bytes (12 recommended)")
    return iv


def _random_iv_bytes(algorithm: int, params: CryptoParams) -> int:
    if params.iv_length is not None:
        if params.iv_length <= 0 or params.iv_length % 8:
            raise bad_parameters("IV Length must be a positive number of bits, a multiple of 8")
        return params.iv_length // 8
    if algorithm in (Alg.CHACHA20, Alg.CHACHA20POLY1305):
        return _CHACHA_NONCE_BYTES
    if params.block_cipher_mode == Mode.GCM:
        return _GCM_IV_BYTES
    if params.block_cipher_mode == Mode.ECB:
        raise bad_parameters("ECB takes no IV: Random IV does not apply")
    return _BLOCK_BITS.get(algorithm, 128) // 8


def _tag_length(params: CryptoParams) -> int:
    length = params.tag_length if params.tag_length is not None else _DEFAULT_TAG_LENGTH
    if not 4 <= length <= 16:
        # General Failure, not Invalid Field: the CS-BC profile's mandatory cases
        # (CS-BC-M-GCM-1, CS-BC-M-CHACHA20POLY1305-1) expect exactly that reason here.
        raise CryptoError(
            ResultReason.GENERAL_FAILURE,
            f"Tag Length {length} is out of range: an AEAD tag is 4 to 16 bytes",
        )
    return length


def _no_aead_fields(aad: bytes | None, tag: bytes | None) -> None:
    if aad is not None or tag is not None:
        raise bad_parameters("Authenticated Encryption fields apply to GCM and AEAD modes only")


# --- ChaCha20 (RFC 8439 §2.4, or the original 64-bit nonce) and ChaCha20-Poly1305 ----------


def _chacha20_block_input(iv: bytes, counter: int) -> bytes:
    """cryptography's ChaCha20 takes 16 bytes: a little-endian block counter, then the nonce
    (4 + 12 bytes for RFC 8439, 8 + 8 bytes for the original 64-bit nonce)."""
    if len(iv) == 12:
        return counter.to_bytes(4, "little") + iv
    if len(iv) == 8:
        return counter.to_bytes(8, "little") + iv
    raise bad_parameters("a ChaCha20 nonce is 12 bytes (RFC 8439) or 8 bytes")


def _chacha20(key: bytes, iv: bytes, data: bytes, counter: int = 0) -> bytes:
    if len(key) != 32:
        raise bad_parameters("a ChaCha20 key is 256 bits")
    cipher = Cipher(algorithms.ChaCha20(key, _chacha20_block_input(iv, counter)), mode=None)
    encryptor = cipher.encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _poly1305_tag(key: bytes, iv: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    """RFC 8439 §2.8: the one-time key is the first 32 bytes of ChaCha20 block 0."""
    one_time_key = _chacha20(key, iv, bytes(32))
    mac = poly1305.Poly1305(one_time_key)
    for part in (aad, ciphertext):
        mac.update(part + bytes(-len(part) % 16))
    mac.update(len(aad).to_bytes(8, "little") + len(ciphertext).to_bytes(8, "little"))
    return mac.finalize()


def _aead_nonce(iv: bytes) -> bytes:
    if len(iv) != 12:
        raise bad_parameters("a ChaCha20-Poly1305 nonce is 12 bytes")
    return iv


def _chacha20_poly1305_seal(
    key: bytes, params: CryptoParams, data: bytes, iv: bytes, aad: bytes
) -> tuple[bytes, bytes]:
    tag_length = _tag_length(params)
    nonce = _aead_nonce(iv)
    ciphertext = _chacha20(key, nonce, data, counter=1)
    return ciphertext, _poly1305_tag(key, nonce, aad, ciphertext)[:tag_length]


def _chacha20_poly1305_open(
    key: bytes, params: CryptoParams, data: bytes, iv: bytes, aad: bytes, tag: bytes | None
) -> bytes:
    tag_length = _tag_length(params)
    nonce = _aead_nonce(iv)
    if tag is None or len(tag) != tag_length:
        raise bad_parameters(f"the Authenticated Encryption Tag must be {tag_length} bytes")
    expected = _poly1305_tag(key, nonce, aad, data)[:tag_length]
    if not hmac.compare_digest(expected, tag):
        raise failed("the authentication tag does not match")
    return _chacha20(key, nonce, data, counter=1)
