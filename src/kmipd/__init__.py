"""kmipd: a KMIP key management server for VMware vSphere and vSAN encryption."""

__version__ = "0.1.0"
