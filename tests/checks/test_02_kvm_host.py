"""Checks for guide 02: libvirt answers, the pool sits on the volume group, br0 bridges its
port, and the guest's definition uses the guest volume and the bridge."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest


def xml(host, *args: str) -> ET.Element:
    """The XML that ``virsh ARGS`` prints, parsed."""
    return ET.fromstring(host.check_output("virsh " + " ".join(["%s"] * len(args)), *args))


def test_libvirtd_answers(host):
    """virsh reaches the system libvirtd and the QEMU driver behind it."""
    version = host.run("virsh -c qemu:///system version")

    assert version.rc == 0, version.stderr
    assert "QEMU" in version.stdout


def test_pool_is_logical_on_the_volume_group(host, params):
    """The pool is of type logical and its source is the storage guide's volume group."""
    pool = xml(host, "pool-dumpxml", params["POOL"])

    assert pool.get("type") == "logical"
    assert pool.findtext("source/name") == params["VG_NAME"]
    assert pool.findtext("target/path") == f"/dev/{params['VG_NAME']}"


def test_pool_is_active_and_starts_with_libvirtd(host, params):
    """The pool runs now and is marked to start with libvirtd."""
    info = host.check_output("virsh pool-info %s", params["POOL"])

    assert "State:          running" in info, info
    assert "Autostart:      yes" in info, info


def test_bridge_is_up_with_its_port(host, params):
    """br0 exists, is up, and the named interface is its port."""
    bridge, port = params["BRIDGE"], params["BRIDGE_PORT"]

    assert host.file(f"/sys/class/net/{bridge}/bridge").is_directory, f"{bridge} is no bridge"
    assert host.file(f"/sys/class/net/{bridge}/operstate").content_string.strip() == "up"
    master = host.check_output("basename $(readlink -f /sys/class/net/%s/master)", port)
    assert master == bridge, f"{port} is a port of {master!r}"


def test_bridge_keeps_the_port_mac_address(host, params):
    """The bridge has its port's MAC address, so the network still knows the host."""
    mac = host.file(f"/sys/class/net/{params['BRIDGE_PORT']}/address").content_string
    assert host.file(f"/sys/class/net/{params['BRIDGE']}/address").content_string == mac


def test_guest_volume_is_a_logical_volume(host, params):
    """The guest's volume is a logical volume of the volume group, as libvirt reports it."""
    lvs = host.check_output("lvs --noheadings -o lv_name %s", params["VG_NAME"]).split()
    path = host.check_output("virsh vol-path --pool %s %s", params["POOL"], params["GUEST"])

    assert params["GUEST"] in lvs, lvs
    assert path == f"/dev/{params['VG_NAME']}/{params['GUEST']}"


@pytest.fixture(scope="module")
def guest(host, params) -> ET.Element:
    return xml(host, "dumpxml", "--inactive", params["GUEST"])


def test_guest_disk_is_the_volume(guest, params):
    """The guest's only disk is the guest volume."""
    disks = guest.findall("devices/disk[@device='disk']")
    sources = [d.find("source").attrib for d in disks]
    wanted = {"pool": params["POOL"], "volume": params["GUEST"]}
    dev = f"/dev/{params['VG_NAME']}/{params['GUEST']}"

    assert len(disks) == 1, sources
    assert sources[0] == wanted or sources[0].get("dev") == dev, sources


def test_guest_network_is_the_bridge(guest, params):
    """The guest's network interface is a tap on br0."""
    interfaces = guest.findall("devices/interface")

    assert [i.get("type") for i in interfaces] == ["bridge"]
    assert interfaces[0].find("source").get("bridge") == params["BRIDGE"]
