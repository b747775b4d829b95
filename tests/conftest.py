"""Shared fixtures. Ray starts at most once per test session (embedded, 127.0.0.1, no dashboard)."""

from __future__ import annotations

import os

import pytest

# Must be set before `import ray` anywhere in the test session (keeps Ray on 127.0.0.1 here).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def ray_session():
    """An embedded Ray shared by every test that needs it."""
    import ray

    if not ray.is_initialized():
        # address="local": always start our own instance, never join a Ray already running on the machine.
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    # Left running until the interpreter exits: other session-scoped users may still need it.
