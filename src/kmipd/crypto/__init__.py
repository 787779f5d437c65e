"""Server-side cryptography, sans I/O: byte strings and parameters in, byte strings out.

The operation modules (``kmipd.operations.encrypt`` ...) resolve the key, check its usage
mask and state, and call in here; nothing here reads the store or logs. Every failure is a
:class:`kmipd.crypto.errors.CryptoError` carrying the KMIP Result Reason to answer.
"""
