"""`proven verify` end to end on real VMs: the storage guide passes, a failing step fails."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from pipeline_helpers import FIXTURES, ROOT, lab_leftovers, proven, report

LAB = ("-p", "DISKS=/dev/vdb /dev/vdc", "-p", "DRILL=yes")


def on_vm(command: str) -> str:
    """Run ``command`` on the kept lab VM; its output, or the test fails."""
    from proven import vm

    proc = vm.ssh(command, timeout=600)
    assert proc.returncode == 0, f"{command}: {proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def storage_run():
    """One verify of the storage guide with the VM kept for the extra checks below."""
    proc = proven("verify", "01-storage", "--keep", "--force")
    yield proc
    proven("destroy", timeout=600)


@pytest.fixture(scope="module")
def storage_report(storage_run):
    """That verify's report, read before later tests write theirs."""
    return report()


def test_storage_guide_passes_with_its_checks(storage_run, storage_report):
    """verify exits 0 and the report says the storage runbook passed, checks and all."""
    assert storage_run.returncode == 0, storage_run.stdout[-3000:]
    rb = storage_report["runbooks"][0]

    assert report()["outcome"] == "passed"
    assert rb["slug"] == "01-storage" and rb["outcome"] == "passed"
    assert rb["steps"] > 0 and rb["steps_run"] == rb["steps"]
    assert rb["checks_failed"] == 0 and rb["checks_passed"] >= 10
    assert {c["stage"] for c in rb["checks"]} == {"after runbook", "second run", "after reboot"}
    canaries = next(c for c in rb["checks"] if c["name"].startswith("canaries written"))
    assert canaries["outcome"] == "passed"
    for path in ("/mnt/target/proven-canary", "/mnt/target/boot/proven-canary", "/dev/vg0/canary"):
        assert path in canaries["message"]


def test_summary_prints_every_phase_with_timings(storage_run):
    """The closing table names each phase of the pipeline with its seconds."""
    outcomes = {
        "host": "done",
        "box": "done",
        "VM up": "done",
        "disks": "done",
        "runbook 01-storage": "passed",
        "checks 01-storage": "passed",
        "second run 01-storage": "passed",
        "reboot": "done",
        "checks 01-storage after reboot": "passed",
        "site": "done",
    }
    for phase, outcome in outcomes.items():
        line = rf"^{re.escape(phase)}\s+{outcome}\s+\d+\.\d"
        assert re.search(line, storage_run.stdout, re.M), phase


def test_site_shows_output_of_this_very_run(storage_run):
    """The storage page carries the md2 UUID this run created, so the output is this run's."""
    executed = (ROOT / "build" / "executed" / "01-storage.ipynb").read_text()
    uuid = re.search(r"name=lab:data UUID=([0-9a-f:]{35})", executed).group(1)
    page = (ROOT / "site" / "guides" / "01-storage" / "index.html").read_text()

    assert uuid in page


def test_root_only_file_is_read_through_sudo(storage_run):
    """A check reading a root-owned 0640 file passes when it runs through sudo."""
    proc = proven("check", str(FIXTURES / "root_only_checks.py"))

    assert proc.returncode == 0, proc.stdout


def test_root_only_file_without_sudo_fails_clearly(storage_run):
    """Without sudo the same check fails and says that sudo is what it needs."""
    proc = proven("check", str(FIXTURES / "root_only_checks.py"), "--no-sudo")

    assert proc.returncode != 0
    assert "cannot read /etc/shadow as vagrant" in proc.stdout
    assert "need the checks to run with sudo" in proc.stdout


def test_second_run_through_proven_run_passes_and_checks_agree(storage_run):
    """The storage runbook run again on the same VM with `proven run` changes nothing."""
    before = proven("check", "tests/checks/test_01_storage.py", *LAB)
    proc = proven("run", "01-storage", "--target", "lab")
    after = proven("check", "tests/checks/test_01_storage.py", *LAB)

    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "runbook 01-storage: passed, 14/14 steps" in proc.stdout
    assert "already holds this guide's arrays" in proc.stdout
    assert before.returncode == after.returncode == 0
    assert before.stdout.count("passed ") == after.stdout.count("passed ") >= 12


def test_checks_see_a_degraded_array(storage_run):
    """With a member of md2 failed and removed, the storage checks fail and name md2."""
    on_vm("sudo mdadm /dev/md2 --fail /dev/vdc3 && sudo mdadm /dev/md2 --remove /dev/vdc3")
    proc = proven("check", "tests/checks/test_01_storage.py", *LAB)

    assert proc.returncode != 0
    assert "/dev/md2 state is 'clean, degraded'" in proc.stdout


def test_degraded_data_array_comes_back_after_a_reboot(storage_run):
    """Debian 12 starts md2 degraded at boot, keeps vg0, and the re-added member resyncs."""
    from proven import vm

    vm.reboot()
    mdstat = on_vm("cat /proc/mdstat")
    assert re.search(r"^md2 : active.* raid1 vdb3\[0\]\n.*\[2/1\] \[U_\]", mdstat, re.M), mdstat
    assert "vg0" in on_vm("sudo vgs --noheadings -o vg_name")
    assert on_vm("findmnt -n -o SOURCE /mnt/target").strip() == "/dev/md1"

    on_vm("sudo mdadm /dev/md2 --add /dev/vdc3 && sudo mdadm --wait /dev/md2 || true")
    proc = proven("check", "tests/checks/test_01_storage.py", *LAB)
    assert proc.returncode == 0, proc.stdout


def test_nothing_of_the_lab_listens_outside_loopback(storage_run):
    """With the VM up, no lab process listens on this machine's own network addresses."""
    ours = ("qemu-system", "libvirtd", "virtlogd", "vagrant", "jupyter", "ruby", "python")
    out = subprocess.run(["ss", "-Hltunp"], capture_output=True, text=True, check=True).stdout
    exposed = [
        line
        for line in out.splitlines()
        if any(name in line for name in ours)
        and not re.search(r"\s(127\.0\.0\.1|\[::1\]):\d+\s", line)
    ]

    assert exposed == []


def test_vagrants_well_known_key_no_longer_opens_the_vm(storage_run):
    """Vagrant replaced the box's insecure key on first boot: only the VM's own key is left."""
    insecure = next(Path("/usr/share/rubygems-integration/all/gems").glob("vagrant-*/keys"))
    authorized = on_vm("cat ~/.ssh/authorized_keys")

    public = (insecure / "vagrant.pub").read_text().split()[1]
    assert public not in authorized
    assert authorized.strip(), "no key at all: the VM could not be reached"


def test_proven_run_refuses_a_disk_the_vm_lacks_before_any_step(storage_run):
    """A DISKS entry the lab VM does not have stops `proven run` before step 1."""
    proc = proven("run", "01-storage", "--target", "lab", "-p", "DISKS=/dev/vdb /dev/vdz")

    assert proc.returncode == 2
    assert "no such disk on the target: /dev/vdz" in proc.stdout
    assert "step 1/" not in proc.stdout


def test_proven_run_on_a_fresh_lab_vm_gives_the_checks_verify_gave(storage_run, storage_report):
    """`proven up` then `proven run` of the storage guide: the same checks pass as in verify."""
    verified = {
        c["name"]: c["outcome"]
        for c in storage_report["runbooks"][0]["checks"]
        if c["stage"] == "after runbook"
    }
    assert proven("destroy", timeout=600).returncode == 0

    up = proven("up", timeout=1200)
    run = proven("run", "01-storage", "--target", "lab")
    check = proven("check", "01-storage")

    assert up.returncode == 0 and "the lab VM is up" in up.stdout
    assert run.returncode == 0, run.stdout[-3000:]
    assert re.search(r"^runbook 01-storage: passed, (\d+)/\1 steps", run.stdout, re.M)
    assert "/dev/vdb: free" in run.stdout  # a first run, on blank disks
    found = re.findall(r"^(passed|failed|skipped)\s+(\S+)", check.stdout, re.M)
    assert check.returncode == 0, check.stdout
    assert {name: outcome for outcome, name in found} == verified


def test_failing_step_fails_verify_and_leaves_nothing_behind(storage_run):
    """A command failing mid-step stops verify, names runbook and step, and leaks no VM."""
    proc = proven(
        "verify", "--runbook", str(FIXTURES / "90-fails-midway.ipynb"), "--no-site", "--force"
    )
    data = report()

    assert proc.returncode != 0
    assert "90-fails-midway" in proc.stdout and "step 2" in proc.stdout
    assert "Fail in the middle" in proc.stdout
    assert data["outcome"] == "failed"
    assert data["runbooks"][0]["outcome"] == "failed"
    assert "after" not in data["runbooks"][0]["error"].split("--- output ---")[-1].split()
    assert lab_leftovers() == ([], [])
