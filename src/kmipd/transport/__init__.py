"""Sockets: the KMIP TLS listener and the TLS contexts it uses."""
