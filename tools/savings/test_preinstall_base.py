"""Check for tools/savings/preinstall-base: the storage guide's packages are in place."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("name", ["mdadm", "lvm2", "fdisk"])
def test_package_is_installed(host, name):
    """Each package the storage guide installs is there before the guide starts."""
    assert host.package(name).is_installed
