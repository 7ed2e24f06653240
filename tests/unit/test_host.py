"""Host preparation: a missing package is named with the command that installs it."""

from __future__ import annotations

import json

import pytest

from proven import host, verify
from proven.errors import HostError
from proven.guides import by_slug

# No Debian package has this name, so the real dpkg-query reports it as not installed.
ABSENT = "proven-no-such-package"


@pytest.fixture
def one_package_missing(monkeypatch):
    monkeypatch.setattr(host, "package_list", lambda: ["bash", ABSENT])


def test_missing_package_is_named_with_its_install_command(one_package_missing):
    """Without --install, the error lists what is missing and how to install it."""
    with pytest.raises(HostError) as err:
        host.ensure_packages(install=False)

    assert str(err.value).startswith(f"host packages missing: {ABSENT}")
    assert f"apt-get install -y --no-install-recommends {ABSENT}" in err.value.hint
    assert "bash" not in str(err.value).split(":", 1)[1]


def test_verify_stops_at_a_missing_package_before_any_vm(
    one_package_missing, monkeypatch, tmp_path, capsys
):
    """verify exits non-zero in its host phase, names the package, and says failed."""
    report = tmp_path / "report.json"
    monkeypatch.setattr(verify, "REPORT", report)
    monkeypatch.setattr(host.os, "geteuid", lambda: 0)
    opts = verify.Options(
        guides=[by_slug("01-storage")], install=False, force=True, site=False, second_run=False
    )

    status = verify.verify(opts)

    data = json.loads(report.read_text())
    assert status == 1
    assert data["outcome"] == "failed"
    assert ABSENT in data["error"] and "apt-get install" in data["error"]
    assert data["phases"][0]["name"] == "host" and data["phases"][0]["outcome"] == "failed"
    assert "VM up" not in [p["name"] for p in data["phases"]]
    out = capsys.readouterr().out
    assert "verify failed: host packages missing" in out
    assert "verify passed" not in out
