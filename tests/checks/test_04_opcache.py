"""Checks for guide 04: OPcache is on for PHP under mod_fcgid, with the guide's memory setting."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def opcache(host) -> dict:
    """OPcache's state as the status page reports it over HTTP."""
    return json.loads(host.check_output("curl -sS --fail http://localhost/check/opcache.php"))


def test_opcache_is_enabled_as_reported_over_http(opcache):
    """The PHP process that answers over HTTP has OPcache on."""
    assert opcache["enabled"] is True, opcache


def test_opcache_memory_is_what_the_guide_sets(opcache, params):
    """opcache.memory_consumption is OPCACHE_MEMORY megabytes."""
    assert opcache["memory_mb"] == int(params["OPCACHE_MEMORY"]), opcache
