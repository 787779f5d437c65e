"""Root key providers: the ``RootKeyProvider`` contract and its implementations.

``base`` holds the contract (Protocol, capabilities record, blob header, errors);
``builtin`` adapts the built-in keyring; ``pkcs11`` (optional dependency ``python-pkcs11``,
extra ``pkcs11``) keeps root keys in an HSM token. Import ``pkcs11`` only when configured.
"""

from kmipd.keys.providers.base import (
    BlobHeader,
    Capabilities,
    Health,
    KeyNotUsable,
    KeyState,
    Mechanism,
    NotSupported,
    ProviderError,
    ProviderKind,
    ProviderUnavailable,
    RootKeyProvider,
    RootKeyStatus,
    WrappedKeyInvalid,
    parse_blob,
)

__all__ = [
    "BlobHeader",
    "Capabilities",
    "Health",
    "KeyNotUsable",
    "KeyState",
    "Mechanism",
    "NotSupported",
    "ProviderError",
    "ProviderKind",
    "ProviderUnavailable",
    "RootKeyProvider",
    "RootKeyStatus",
    "WrappedKeyInvalid",
    "parse_blob",
]
