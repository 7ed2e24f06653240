"""Check for tools/savings/undo-modules-dep: the initramfs takes most modules again."""

from __future__ import annotations


def test_initramfs_builds_with_most_modules(host):
    """initramfs.conf says MODULES=most, Debian's default."""
    conf = host.file("/etc/initramfs-tools/initramfs.conf").content_string

    assert "MODULES=most" in conf.splitlines()
