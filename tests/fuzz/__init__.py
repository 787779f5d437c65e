"""Fuzzing of the TTLV decoder and of the whole KMIP request path (atheris), with seeds read
from ``../shared/`` at run time. ``python tests/fuzz/run.py --seconds N`` runs every target."""
