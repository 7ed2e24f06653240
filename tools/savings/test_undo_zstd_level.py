"""Check for tools/savings/undo-zstd-level: the initramfs is compressed at zstd's default."""

from __future__ import annotations


def test_initramfs_has_no_compression_level_of_its_own(host):
    """initramfs.conf keeps COMPRESS=zstd and sets no COMPRESSLEVEL."""
    lines = host.file("/etc/initramfs-tools/initramfs.conf").content_string.splitlines()

    assert "COMPRESS=zstd" in lines
    assert not [line for line in lines if line.startswith("COMPRESSLEVEL=")]
