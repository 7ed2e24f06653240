#!/usr/bin/env python3
"""Check that a Funambol DS Server's configured server URI agrees with the URL its clients use.

At authentication the server binds the sync session to the ``serverURI`` set in Funambol.xml, not
to the URI the client addressed. When the two differ, the client's later messages arrive for a URI
whose session is not authenticated, and the server fails with a NullPointerException in
``SyncSessionHandler.processInitSyncMapMessage``. The cure is to leave ``serverURI`` empty (the
server then takes each client's own URI) or to point the clients at the configured URI.

Funambol.xml is a ``java.beans.XMLDecoder`` document, usually at
``<FUNAMBOL_HOME>/ds-server/config/Funambol.xml``. The URI sits in the engine configuration::

    <java version="1.5.0" class="java.beans.XMLDecoder">
     <object class="com.funambol.framework.server.config.ServerConfiguration">
      <void property="engineConfiguration">
       <object class="com.funambol.framework.server.config.EngineConfiguration">
        <void property="serverURI">
         <string>http://sync.example.org/funambol/ds</string>
        </void>

Class names vary between releases and are not checked; the ``serverURI`` property is looked for
in the object that the root object's ``engineConfiguration`` property holds, then in the root
object itself.
``<string></string>``, ``<string/>`` and ``<null/>`` all count as empty.

Two URIs agree when they are equal after this normalisation:

- surrounding whitespace is ignored;
- scheme and host compare case-insensitively;
- an explicit default port (80 for http, 443 for https) equals no port;
- an empty path equals ``/``, and a single trailing slash is ignored;
- the rest of the path and the query compare exactly as written (no percent-decoding);
- user info and fragment are ignored, since neither reaches the server in the request line.

A value of only whitespace is not empty: nothing says the server trims it.

``--fix`` empties the value in place: the original goes to ``Funambol.xml.bak`` first, only the
bytes between ``<string>`` and ``</string>`` are removed, and the new file replaces the old one
atomically with the same mode. The server reads the file when it starts, so restart it after.

Exit codes: 0 agree (or fixed), 1 disagree, 2 bad command line, 3 file missing, 4 file unreadable,
5 malformed XML, 6 not an XMLDecoder document, 7 no usable serverURI element, 8 fix not written.

The module uses the standard library only, so it runs as a single file on a server::

    python3 funambol.py --config /opt/Funambol/ds-server/config/Funambol.xml \\
        --client-url http://sync.example.org:8080/funambol/ds
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import stat
import sys
import tempfile
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

log = logging.getLogger("proven")

AGREE = 0
DISAGREE = 1
USAGE = 2
FILE_MISSING = 3
FILE_UNREADABLE = 4
MALFORMED_XML = 5
NOT_XMLDECODER = 6
NO_SERVER_URI = 7
FIX_FAILED = 8

EXPECTED_PLACE = (
    '<java class="java.beans.XMLDecoder"> > <object> > <void property="engineConfiguration"> '
    '> <object> > <void property="serverURI"><string>...</string></void>'
)
EMPTY_ELEMENT = '<void property="serverURI"><string></string></void>'
SYMPTOM = (
    "At authentication Funambol binds the sync session to the configured serverURI instead of\n"
    "the URI the client addressed. The client's later messages arrive for its own URI, where the\n"
    "session is not authenticated, and sync fails with a NullPointerException in\n"
    "SyncSessionHandler.processInitSyncMapMessage."
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FunambolError(Exception):
    """A failure to read or fix Funambol.xml; ``exit_code`` is distinct per kind."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n  next: {self.hint}" if self.hint else text


class ConfigMissing(FunambolError):
    """The configuration file does not exist."""

    exit_code = FILE_MISSING


class ConfigUnreadable(FunambolError):
    """The configuration file exists but cannot be read."""

    exit_code = FILE_UNREADABLE


class MalformedXML(FunambolError):
    """The file is not well-formed XML; ``line`` and ``column`` count from 1."""

    exit_code = MALFORMED_XML

    def __init__(self, message: str, hint: str, line: int, column: int) -> None:
        super().__init__(message, hint)
        self.line = line
        self.column = column


class NotXMLDecoder(FunambolError):
    """The file is XML but not a java.beans.XMLDecoder document."""

    exit_code = NOT_XMLDECODER


class ServerURIMissing(FunambolError):
    """The document has no serverURI element, or one that sets no string."""

    exit_code = NO_SERVER_URI


class FixFailed(FunambolError):
    """The emptied configuration could not be written."""

    exit_code = FIX_FAILED


@dataclass
class Element:
    """One XML element with the byte offsets ``--fix`` needs to edit the file in place."""

    tag: str
    attrs: dict[str, str]
    line: int
    start: int
    end: int = -1
    children: list[Element] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def child_voids(self, prop: str) -> list[Element]:
        """The ``<void property=prop>`` children of this element."""
        return [c for c in self.children if c.tag == "void" and c.attrs.get("property") == prop]


@dataclass(frozen=True)
class ServerURI:
    """The configured server URI as found in the document; ``value`` is None for ``<null/>``."""

    value: str | None
    line: int
    content: tuple[int, int] | None


class Parts(NamedTuple):
    """The parts of an http(s) URL that take part in the comparison."""

    scheme: str
    host: str
    port: int
    path: str
    query: str


@dataclass(frozen=True)
class Verdict:
    """Whether the configured server URI and the clients' URL agree, and why."""

    agree: bool
    configured: str | None
    client: str
    reason: str
    differences: tuple[str, ...] = ()


def read_config(path: Path) -> bytes:
    """The bytes of ``path``, or an error that says whether it is missing or unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigMissing(
            f"{path}: no such file",
            hint="pass the server's Funambol.xml, usually <FUNAMBOL_HOME>/ds-server/config/"
            "Funambol.xml",
        ) from None
    except IsADirectoryError:
        raise ConfigUnreadable(
            f"{path}: is a directory, not a file", hint="pass the Funambol.xml inside it"
        ) from None
    except OSError as exc:
        raise ConfigUnreadable(
            f"{path}: cannot be read: {exc.strerror or exc}",
            hint="run as a user who may read it (the server's user, or root)",
        ) from None
    log.debug("read %d bytes from %s", len(data), path)
    return data


def parse(data: bytes, path: Path) -> Element:
    """The element tree of ``data``, with line numbers and byte offsets."""
    parser = xml.parsers.expat.ParserCreate()
    parser.buffer_text = True
    stack: list[Element] = []
    roots: list[Element] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        element = Element(tag, attrs, parser.CurrentLineNumber, parser.CurrentByteIndex)
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)

    def end(tag: str) -> None:
        stack.pop().end = parser.CurrentByteIndex

    def text(chunk: str) -> None:
        if stack:
            stack[-1].text.append(chunk)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        reason = xml.parsers.expat.ErrorString(exc.code)
        # Expat counts columns from 0; people and editors count from 1.
        line, column = exc.lineno, exc.offset + 1
        raise MalformedXML(
            f"{path}: not well-formed XML: {reason} at line {line}, column {column}",
            hint="correct the file there (Funambol's XMLDecoder cannot read it either), "
            "or restore it from a backup",
            line=line,
            column=column,
        ) from None
    return roots[0]


def find_server_uri(root: Element, data: bytes, path: Path) -> ServerURI:
    """The engine configuration's serverURI, or an error that says where it was expected."""
    if root.tag != "java" or root.attrs.get("class", "java.beans.XMLDecoder") != (
        "java.beans.XMLDecoder"
    ):
        shown = f"<{root.tag}" + (
            f' class="{root.attrs["class"]}"' if "class" in root.attrs else ""
        )
        raise NotXMLDecoder(
            f"{path}: not a java.beans.XMLDecoder document: the root element is {shown}>, "
            'expected <java class="java.beans.XMLDecoder">',
            hint="pass the Funambol DS Server's own Funambol.xml (ds-server/config/Funambol.xml)",
        )
    objects = [c for c in root.children if c.tag == "object"]
    if not objects:
        raise NotXMLDecoder(
            f"{path}: the <java> element holds no <object>, so it configures nothing",
            hint="pass the Funambol DS Server's own Funambol.xml (ds-server/config/Funambol.xml)",
        )
    config = objects[0]
    log.debug("root object at line %d: %s", config.line, config.attrs.get("class", "?"))

    places = [
        obj for void in config.child_voids("engineConfiguration") for obj in void.children
    ] + [config]
    for place in places:
        voids = place.child_voids("serverURI")
        if voids:
            # XMLDecoder applies the settings in order, so the last one is the one that holds.
            return _server_uri_value(voids[-1], data, path)

    engine = config.child_voids("engineConfiguration")
    where = (
        "" if engine else '; the root object has no <void property="engineConfiguration"> either'
    )
    raise ServerURIMissing(
        f"{path}: no serverURI element; expected at {EXPECTED_PLACE}{where}",
        hint=f"add {EMPTY_ELEMENT} to the engine configuration (an unset value lets the server "
        "take each client's own URI)",
    )


def _server_uri_value(void: Element, data: bytes, path: Path) -> ServerURI:
    """The value a ``<void property="serverURI">`` sets, with the byte span of its text."""
    values = [c for c in void.children if c.tag != "void"]
    if not values:
        raise ServerURIMissing(
            f'{path}: line {void.line}: <void property="serverURI"> sets no value',
            hint=f"write it as {EMPTY_ELEMENT}, or put the URI inside <string>",
        )
    value = values[0]
    if value.tag == "null":
        return ServerURI(None, value.line, None)
    if value.tag != "string" or "idref" in value.attrs:
        raise ServerURIMissing(
            f"{path}: line {value.line}: serverURI holds <{value.tag}>, expected a <string>",
            hint=f"write it as {EMPTY_ELEMENT}, or put the URI inside <string>",
        )
    opened = _tag_end(data, value.start)
    if data[opened - 2 : opened] == b"/>":
        return ServerURI("", value.line, None)
    return ServerURI("".join(value.text), value.line, (opened, value.end))


def _tag_end(data: bytes, start: int) -> int:
    """The offset just past the ``>`` that closes the tag opening at ``start``."""
    quote = 0
    for index in range(start + 1, len(data)):
        byte = data[index]
        if quote:
            quote = 0 if byte == quote else quote
        elif byte in b"\"'":
            quote = byte
        elif byte == ord(">"):
            return index + 1
    return len(data)


def url_parts(url: str) -> Parts | None:
    """The normalised parts of an absolute http(s) URL, or None for anything else."""
    split = urlsplit(url.strip())
    scheme = split.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not split.hostname:
        return None
    try:
        port = split.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    path = split.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return Parts(scheme, split.hostname, port, path, split.query)


def normalise(url: str) -> str | None:
    """``url`` in the form used for comparison, or None when it is not an http(s) URL."""
    parts = url_parts(url)
    if parts is None:
        return None
    host = f"[{parts.host}]" if ":" in parts.host else parts.host
    port = "" if parts.port == _DEFAULT_PORTS[parts.scheme] else f":{parts.port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"


def compare(configured: str | None, client: str) -> Verdict:
    """Whether a configured serverURI and the clients' URL agree under the module's rule."""
    if configured is None:
        return Verdict(True, configured, client, "unset (<null/>)")
    if configured == "":
        return Verdict(True, configured, client, "empty")
    if not configured.strip():
        return Verdict(False, configured, client, "only whitespace, which is not empty")
    if configured.strip() != configured:
        log.warning(
            "serverURI %r has whitespace around it; the server may not ignore it", configured
        )

    ours, theirs = url_parts(configured), url_parts(client)
    if ours is None:
        return Verdict(False, configured, client, "not an absolute http or https URL")
    if ours == theirs:
        same = configured.strip() == client.strip()
        return Verdict(True, configured, client, "equal" if same else "equal after normalisation")
    differences = tuple(
        f"{name}: {mine or '(none)'} vs {yours or '(none)'}"
        for name, mine, yours in zip(Parts._fields, ours, theirs, strict=True)
        if mine != yours
    )
    return Verdict(False, configured, client, "different from the clients' URL", differences)


def check(path: Path, client_url: str) -> Verdict:
    """Read ``path`` and compare its serverURI with ``client_url``."""
    data = read_config(path)
    found = find_server_uri(parse(data, path), data, path)
    log.debug("serverURI at line %d of %s: %r", found.line, path, found.value)
    return compare(found.value, client_url)


def fix(path: Path) -> Path | None:
    """Empty the serverURI in ``path`` in place; return the backup, or None if already empty."""
    target = path.resolve()
    data = read_config(target)
    found = find_server_uri(parse(data, target), data, target)
    if found.content is None:
        log.info("serverURI in %s is already empty; nothing written", target)
        return None

    begin, end = found.content
    if not data.startswith(b"</", end):
        raise FixFailed(
            f"{path}: could not locate the bytes of the serverURI value safely; nothing written",
            hint=f"edit the file by hand: make line {found.line} read {EMPTY_ELEMENT}",
        )
    emptied = data[:begin] + data[end:]
    # Prove the edit before any file changes: the new bytes must parse to an empty serverURI.
    if find_server_uri(parse(emptied, target), emptied, target).value != "":
        raise FixFailed(f"{path}: the edited document did not read back as empty; nothing written")

    backup = target.with_name(target.name + ".bak")
    original = target.stat()
    try:
        write_atomically(backup, data, original)
        write_atomically(target, emptied, original)
    except OSError as exc:
        raise FixFailed(
            f"{path}: could not write the fix: {exc.strerror or exc}",
            hint=f"run as a user who may write {target.parent}",
        ) from None
    log.info("emptied serverURI in %s; the original is in %s", target, backup)
    return backup


def write_atomically(path: Path, data: bytes, like: os.stat_result) -> None:
    """Replace ``path`` with ``data``, with the mode and owner of ``like``, all at once."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, stat.S_IMODE(like.st_mode))
        # Only root may give a file away; anyone else keeps their own ownership.
        with contextlib.suppress(PermissionError):
            os.chown(temporary, like.st_uid, like.st_gid)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def explain(verdict: Verdict, path: Path) -> str:
    """The report for a verdict: what is configured, what clients use and, if needed, the fix."""
    configured = "(null)" if verdict.configured is None else repr(verdict.configured)
    lines = [
        f"Funambol.xml:         {path}",
        f"configured serverURI: {configured}",
        f"clients use:          {verdict.client}",
    ]
    if verdict.agree:
        if verdict.reason == "equal after normalisation":
            shown = normalise(verdict.client)
            lines.append(f"agree: {verdict.reason} (both are {shown})")
        elif verdict.reason == "equal":
            lines.append("agree: equal")
        else:
            lines.append(
                f"agree: serverURI is {verdict.reason}, so the server takes each client's own URI"
            )
        return "\n".join(lines)

    lines.append(f"DISAGREE: the configured serverURI is {verdict.reason}")
    lines += [f"  {difference}" for difference in verdict.differences]
    lines += [
        "",
        SYMPTOM,
        "",
        "Fix it one of two ways, then restart the server (it reads Funambol.xml when it starts):",
        "  1. empty the element, so the server takes each client's own URI:",
        f"       {EMPTY_ELEMENT}",
        "     (--fix does this in place and keeps the original as Funambol.xml.bak)",
    ]
    if url_parts(verdict.configured) is not None:
        lines.append(f"  2. point every client at the configured URI: {verdict.configured.strip()}")
    return "\n".join(lines)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line of the checker; ``prog`` defaults to the name it was started by."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Say whether Funambol.xml's serverURI agrees with the URL clients use.",
        epilog="exit codes: 0 agree or fixed, 1 disagree, 2 usage, 3 file missing, "
        "4 unreadable, 5 malformed XML, 6 not XMLDecoder, 7 no serverURI, 8 fix not written",
    )
    parser.add_argument("--config", required=True, type=Path, help="path to Funambol.xml")
    parser.add_argument(
        "--client-url", required=True, help="the sync URL clients use, e.g. http://host/funambol/ds"
    )
    parser.add_argument(
        "--fix",
        action="store_true",
        help="on disagreement, empty serverURI in place (original kept as Funambol.xml.bak)",
    )
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the checker; return the exit code."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if url_parts(args.client_url) is None:
        parser.error(
            f"--client-url {args.client_url!r} is not an absolute http or https URL "
            "(e.g. http://sync.example.org:8080/funambol/ds)"
        )

    try:
        verdict = check(args.config, args.client_url)
        print(explain(verdict, args.config))
        if verdict.agree or not args.fix:
            return AGREE if verdict.agree else DISAGREE

        backup = fix(args.config)
        verdict = check(args.config, args.client_url)
        if backup:
            print(f"\nfixed: emptied serverURI; the original is in {backup}")
        print(explain(verdict, args.config))
        return AGREE if verdict.agree else DISAGREE
    except FunambolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
