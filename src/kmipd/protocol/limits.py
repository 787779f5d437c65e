"""Hard limits applied by every decoder. Each one names the attack it stops."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    # A frame header announcing 4 GiB must not make us allocate or wait for 4 GiB.
    max_frame_bytes: int = 1 << 20
    # Deep nesting exhausts the stack of a recursive decoder; KMIP messages nest about 10 deep.
    max_depth: int = 32
    # One Text String, Byte String or Big Integer may not hog the frame budget alone.
    max_field_bytes: int = 1 << 20
    # Many tiny items cost far more memory as Python objects than as bytes.
    max_items_per_structure: int = 10_000
    # ... and in the whole message: a 1 MiB frame holds 130,000 empty structures, whose
    # decoding would hold the event loop for half a second (other clients wait).
    max_items_per_message: int = 20_000
    # Each batch item is a database operation; cap the work one message can ask for.
    max_batch_count: int = 256
    # Text encodings (XML, JSON) are larger than TTLV for the same tree.
    max_text_bytes: int = 4 << 20


DEFAULT_LIMITS = Limits()
