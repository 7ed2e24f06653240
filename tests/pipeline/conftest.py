"""The pipeline's own tests: they run `proven verify` for real, on real lab VMs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pipeline_helpers import host_daemons, proven

HERE = Path(__file__).parent
# Check modules of the fixture runbooks: verify runs them against the VM, pytest must not.
collect_ignore_glob = ["fixtures/*"]


def pytest_collection_modifyitems(items):
    # Collection hooks see every test of the session: mark only the ones in this folder.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session", autouse=True)
def needs_root():
    if os.geteuid() != 0:
        pytest.fail("the pipeline tests need root (libvirtd, network namespaces)", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def host_left_as_found(needs_root):
    """Daemons and the namespace that the tests' runs started are stopped when they end."""
    before = host_daemons()
    yield
    if not before and host_daemons():
        proven("host", "teardown", timeout=300)
