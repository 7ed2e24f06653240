"""Check for tools/savings/undo-unsafe-io: dpkg syncs its writes again."""

from __future__ import annotations


def test_dpkg_has_no_unsafe_io(host):
    """No dpkg configuration file asks for force-unsafe-io any more."""
    found = host.run("grep -rx force-unsafe-io /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d")

    assert found.rc == 1, found.stdout
