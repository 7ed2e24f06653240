"""Checks for guide 01: three md arrays on the disks, LVM on the data array, all persistent."""

from __future__ import annotations

import re

import pytest

ARRAYS = {"md0": "boot", "md1": "root", "md2": "data"}


def detail(host, md: str) -> dict[str, str]:
    """`mdadm --detail` as a dict of its "Key : value" lines."""
    out = host.check_output("mdadm --detail /dev/%s", md)
    return {
        k.strip(): v.strip()
        for k, _, v in (line.partition(" : ") for line in out.splitlines())
        if v
    }


@pytest.mark.parametrize("md", ARRAYS)
def test_array_is_clean_with_all_members_active(host, md, params):
    """Every array is clean (no resync, not degraded) and every disk is an active member."""
    info = detail(host, md)
    disks = len(params["DISKS"].split())

    assert info["State"] in ("clean", "active"), f"/dev/{md} state is {info['State']!r}"
    assert int(info["Raid Devices"]) == disks
    assert int(info["Active Devices"]) == disks, f"/dev/{md}: {info['Active Devices']} active"
    assert int(info["Failed Devices"]) == 0


def test_data_array_level_follows_the_number_of_disks(host, params):
    """The data array is RAID1 on two disks and RAID10 on four or more (DATA_LEVEL auto)."""
    disks = len(params["DISKS"].split())
    wanted = params["DATA_LEVEL"]
    if wanted == "auto":
        wanted = "10" if disks >= 4 else "1"

    assert detail(host, "md2")["Raid Level"] == f"raid{wanted}"
    assert detail(host, "md0")["Raid Level"] == "raid1"
    assert detail(host, "md1")["Raid Level"] == "raid1"


def test_arrays_keep_their_names(host):
    """The arrays are md0, md1 and md2, never a number the kernel picked (md127)."""
    mdstat = host.file("/proc/mdstat").content_string
    active = sorted(re.findall(r"^(md\d+) :", mdstat, re.M))

    assert active == sorted(ARRAYS), f"/proc/mdstat lists {active}"


def test_mdadm_conf_lists_every_array(host):
    """mdadm.conf has an ARRAY line with the UUID of each array."""
    conf = host.file("/etc/mdadm/mdadm.conf").content_string

    for md in ARRAYS:
        uuid = detail(host, md)["UUID"]
        assert re.search(rf"^ARRAY /dev/{md} .*UUID={uuid}", conf, re.M), f"{md} missing"


def test_initramfs_contains_mdadm_conf(host):
    """The running kernel's initramfs carries mdadm.conf, so arrays assemble by name at boot."""
    kernel = host.check_output("uname -r")
    listing = host.check_output("lsinitramfs /boot/initrd.img-%s", kernel)

    assert "etc/mdadm/mdadm.conf" in listing.split()


def test_physical_volume_sits_only_on_the_data_array(host, params):
    """The volume group has exactly one physical volume, and it is /dev/md2."""
    out = host.check_output("pvs --noheadings -o pv_name -S vg_name=%s", params["VG_NAME"])

    assert out.split() == ["/dev/md2"]


def test_volume_group_exists(host, params):
    """The volume group the guide names is there and active."""
    assert host.run("vgs %s", params["VG_NAME"]).rc == 0


@pytest.mark.parametrize("md,where", [("md1", ""), ("md0", "/boot")])
def test_filesystem_is_ext4_and_mounted(host, md, where, params):
    """/ and /boot of the new system are ext4 on their arrays, mounted under MOUNT_ROOT."""
    mount = host.mount_point(params["MOUNT_ROOT"] + where)

    assert mount.exists
    assert mount.filesystem == "ext4"
    assert host.check_output("readlink -f %s", mount.device) == f"/dev/{md}"


def test_fstab_mounts_them_by_uuid(host, params):
    """fstab names both filesystems by UUID, so they come back after a reboot."""
    fstab = host.file("/etc/fstab").content_string

    for md, where in (("md1", ""), ("md0", "/boot")):
        uuid = host.check_output("blkid -s UUID -o value /dev/%s", md)
        assert re.search(
            rf"^UUID={uuid}\s+{re.escape(params['MOUNT_ROOT'] + where)}\s+ext4", fstab, re.M
        )


def test_canary_is_intact(host, params):
    """The drill's canary volume still holds the data written on the first run."""
    if params.get("DRILL") != "yes":
        pytest.skip("DRILL is not 'yes': the runbook wrote no canary")
    result = host.run("sha256sum --check /root/canary.sha256")

    assert result.rc == 0, result.stdout + result.stderr
