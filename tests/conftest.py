"""Test-wide configuration: Hypothesis settings profiles.

``HYPOTHESIS_PROFILE=long`` selects the nightly profile (many more examples); the default
profile keeps the unit tests fast on a small CI machine. Tests that pin ``max_examples``
themselves are not affected by the choice.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default-kmipd",
    max_examples=200,
    deadline=None,
    # The same examples on every run: a CI result does not depend on luck. Exploration with
    # fresh random examples is the "long" profile's job.
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=5_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-kmipd"))
