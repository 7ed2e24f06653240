"""Checks for guide 06: Funambol.xml's server URI is empty or the clients' URL."""

from __future__ import annotations

from pathlib import Path

from proven import funambol


def config_path(params) -> str:
    return f"{params['FUNAMBOL_HOME']}/ds-server/config/Funambol.xml"


def test_server_uri_is_empty_or_the_client_url(host, params):
    """The serverURI in the file, read here with the project's parser, agrees with CLIENT_URL."""
    path = config_path(params)
    data = host.file(path).content
    found = funambol.find_server_uri(funambol.parse(data, Path(path)), data, Path(path))
    verdict = funambol.compare(found.value, params["CLIENT_URL"])

    assert verdict.agree, funambol.explain(verdict, Path(path))


def test_checker_on_the_server_agrees(host, params):
    """The checker copied onto the server exits 0 for the file and the clients' URL."""
    result = host.run(
        "funambol-check --config %s --client-url %s", config_path(params), params["CLIENT_URL"]
    )

    assert result.rc == 0, result.stdout + result.stderr
