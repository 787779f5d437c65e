"""Backups of a kmipd setup (``kmipd backup``, ``kmipd restore``, the ``[backup]`` schedule).

A backup is one file (``archive``): a consistent snapshot of the store (``snapshot``), the
built-in keyring's document, and the configuration, with a manifest and SHA-256 checksums.
It holds ciphertext only: sealed objects, wrapped wrapping keys, API key hashes and the
keyring document encrypted under the keyring master key, which is never in a backup. Private
keys (the CA's, the server's, the clients'), the API token signing key, the admin API key
file and secrets in ``[root_key_providers]`` (``pin``, ``api_key``) are left out too.
"""
