"""Sans-I/O KMIP protocol code: tables, TTLV codec, encodings and typed messages.

Nothing in this package touches a socket, a file or a database.
"""
