"""Rewrite an old mod_fcgid and Apache 2.2 MPM configuration with today's directive names.

mod_fcgid 2.3, the release the Apache project took over, gave every directive an ``Fcgid``
prefix (its upgrade notes list the pairs); Apache 2.4 renamed ``MaxClients`` and
``MaxRequestsPerChild``. The old names still load, so an old configuration keeps working
without saying that it is out of date. This module renames them and keeps everything else of
the text as it was: values, comments, indentation, blank lines, line endings. Names it does not
know are reported, never changed.

Run it as ``python -m proven.fcgid FILE`` (prints the result) or with ``--in-place``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("proven")

# Old name -> current name. mod_fcgid's own upgrade notes, then Apache 2.4's two MPM renames.
RENAMES = {
    "BusyScanInterval": "FcgidBusyScanInterval",
    "BusyTimeout": "FcgidBusyTimeout",
    "DefaultInitEnv": "FcgidInitialEnv",
    "DefaultMaxClassProcessCount": "FcgidMaxProcessesPerClass",
    "DefaultMinClassProcessCount": "FcgidMinProcessesPerClass",
    "ErrorScanInterval": "FcgidErrorScanInterval",
    "FastCgiAccessChecker": "FcgidAccessChecker",
    "FastCgiAccessCheckerAuthoritative": "FcgidAccessCheckerAuthoritative",
    "FastCgiAuthenticator": "FcgidAuthenticator",
    "FastCgiAuthenticatorAuthoritative": "FcgidAuthenticatorAuthoritative",
    "FastCgiAuthorizer": "FcgidAuthorizer",
    "FastCgiAuthorizerAuthoritative": "FcgidAuthorizerAuthoritative",
    "FCGIWrapper": "FcgidWrapper",
    "IdleScanInterval": "FcgidIdleScanInterval",
    "IdleTimeout": "FcgidIdleTimeout",
    "IPCCommTimeout": "FcgidIOTimeout",
    "IPCConnectTimeout": "FcgidConnectTimeout",
    "MaxProcessCount": "FcgidMaxProcesses",
    "MaxRequestInMem": "FcgidMaxRequestInMem",
    "MaxRequestLen": "FcgidMaxRequestLen",
    "MaxRequestsPerProcess": "FcgidMaxRequestsPerProcess",
    "OutputBufferSize": "FcgidOutputBufferSize",
    "PassHeader": "FcgidPassHeader",
    "PHP_Fix_Pathinfo_Enable": "FcgidFixPathinfo",
    "ProcessLifeTime": "FcgidProcessLifeTime",
    "SharememPath": "FcgidProcessTableFile",
    "SocketPath": "FcgidIPCDir",
    "SpawnScore": "FcgidSpawnScore",
    "SpawnScoreUpLimit": "FcgidSpawnScoreUpLimit",
    "TerminationScore": "FcgidTerminationScore",
    "TimeScore": "FcgidTimeScore",
    "ZombieScanInterval": "FcgidZombieScanInterval",
    "MaxClients": "MaxRequestWorkers",
    "MaxRequestsPerChild": "MaxConnectionsPerChild",
}

# What a reader should know about a renamed directive whose value stays the same.
HINTS = {
    "FcgidConnectTimeout": "mod_fcgid uses it on Windows only; on Unix it has no effect",
    "MaxConnectionsPerChild": "counts connections, not requests: with keep-alive a child "
    "serves more requests than this",
}

# Old directives that were not renamed but replaced by something else.
REPLACED = {
    "Order": "is Apache 2.2 access control (mod_access_compat): use Require",
    "Allow": "is Apache 2.2 access control (mod_access_compat): use Require",
    "Deny": "is Apache 2.2 access control (mod_access_compat): use Require",
    "Satisfy": "is Apache 2.2 access control (mod_access_compat): use <RequireAny>/<RequireAll>",
    "NameVirtualHost": "has no effect since Apache 2.4: remove it",
    "LockFile": "was removed in Apache 2.4: use Mutex",
    "DefaultType": "has no effect since Apache 2.4: remove it",
}

# Current names this module knows: mod_fcgid 2.3.9, the MPMs, Apache's core and the modules
# Debian enables by default, plus the ones common next to them. Anything else is reported.
CURRENT = frozenset(
    """
    FcgidAccessChecker FcgidAccessCheckerAuthoritative FcgidAuthenticator
    FcgidAuthenticatorAuthoritative FcgidAuthorizer FcgidAuthorizerAuthoritative
    FcgidBusyScanInterval FcgidBusyTimeout FcgidCmdOptions FcgidConnectTimeout
    FcgidErrorScanInterval FcgidFixPathinfo FcgidIdleScanInterval FcgidIdleTimeout
    FcgidInitialEnv FcgidIOTimeout FcgidIPCDir FcgidMaxProcesses FcgidMaxProcessesPerClass
    FcgidMaxRequestInMem FcgidMaxRequestLen FcgidMaxRequestsPerProcess
    FcgidMinProcessesPerClass FcgidOutputBufferSize FcgidPassHeader FcgidProcessLifeTime
    FcgidProcessTableFile FcgidSpawnScore FcgidSpawnScoreUpLimit FcgidTerminationScore
    FcgidTimeScore FcgidWrapper FcgidZombieScanInterval

    StartServers ServerLimit MaxRequestWorkers MinSpareThreads MaxSpareThreads
    ThreadsPerChild ThreadLimit MaxConnectionsPerChild MinSpareServers MaxSpareServers
    AsyncRequestWorkerFactor ListenBacklog MaxMemFree ReceiveBufferSize SendBufferSize
    PidFile ScoreBoardFile GracefulShutdownTimeout CoreDumpDirectory Mutex User Group

    IfModule IfDefine IfFile IfDirective IfSection If ElseIf Else Directory DirectoryMatch
    Files FilesMatch Location LocationMatch VirtualHost Limit LimitExcept Proxy ProxyMatch
    RequireAll RequireAny RequireNone

    AcceptFilter AcceptPathInfo AccessFileName AddDefaultCharset AllowEncodedSlashes
    AllowOverride AllowOverrideList CGIPassAuth CGIVar ContentDigest Define DocumentRoot
    EnableMMAP EnableSendfile Error ErrorDocument ErrorLog ErrorLogFormat FileETag
    HostnameLookups HttpProtocolOptions Include IncludeOptional KeepAlive KeepAliveTimeout
    LimitInternalRecursion LimitRequestBody LimitRequestFields LimitRequestFieldSize
    LimitRequestLine LimitXMLRequestBody Listen LoadModule LogLevel MaxKeepAliveRequests
    MaxRangeOverlaps MaxRangeReversals MaxRanges MergeSlashes MergeTrailers Options Protocol
    Protocols QualifyRedirectURL RLimitCPU RLimitMEM RLimitNPROC ServerAdmin ServerAlias
    ServerName ServerPath ServerRoot ServerSignature ServerTokens SetHandler
    SetInputFilter SetOutputFilter TimeOut TraceEnable UnDefine UseCanonicalName
    UseCanonicalPhysicalPort

    AddHandler RemoveHandler AddType AddCharset AddEncoding AddLanguage AddInputFilter
    AddOutputFilter DefaultLanguage ForceType ModMimeUsePathInfo MultiviewsMatch
    RemoveType TypesConfig Action Script Alias AliasMatch Redirect RedirectMatch
    RedirectPermanent RedirectTemp ScriptAlias ScriptAliasMatch DirectoryIndex
    DirectorySlash FallbackResource DirectoryCheckHandler Require AuthType AuthName
    AuthUserFile AuthGroupFile AuthBasicProvider AuthMerging CustomLog LogFormat
    TransferLog BufferedLogs SetEnv UnsetEnv PassEnv SetEnvIf SetEnvIfNoCase
    SetEnvIfExpr BrowserMatch BrowserMatchNoCase Header RequestHeader RewriteEngine
    RewriteRule RewriteCond RewriteBase RewriteMap RewriteOptions ExtendedStatus
    SeeRequestTail RequestReadTimeout AddOutputFilterByType DeflateCompressionLevel
    ExpiresActive ExpiresByType ExpiresDefault IndexOptions IndexIgnore AddIcon
    DefaultIcon HeaderName ReadmeName LanguagePriority ForceLanguagePriority
    SSLEngine SSLCertificateFile SSLCertificateKeyFile SSLCertificateChainFile
    SSLProtocol SSLCipherSuite SSLHonorCipherOrder ProxyPass ProxyPassReverse
    ProxyPreserveHost SuexecUserGroup
    """.split()  # noqa: SIM905 (a word list reads better than 200 quoted names)
)

_KNOWN = {name.lower() for name in CURRENT}
_RENAMES = {old.lower(): new for old, new in RENAMES.items()}
_REPLACED = {old.lower(): advice for old, advice in REPLACED.items()}
_DIRECTIVE = re.compile(r"(?P<indent>[ \t]*)(?P<open></?)?(?P<name>[A-Za-z_][\w-]*)(?P<rest>.*)")


@dataclass(frozen=True)
class Note:
    """Something the rewrite changed or wants a reader to look at, on one line."""

    line: int
    kind: str  # "renamed", "hint", "replaced" or "unknown"
    message: str


@dataclass
class Rewrite:
    """A rewritten configuration and what happened on the way."""

    text: str
    notes: list[Note] = field(default_factory=list)

    @property
    def renamed(self) -> list[Note]:
        return [n for n in self.notes if n.kind == "renamed"]

    @property
    def unknown(self) -> list[Note]:
        return [n for n in self.notes if n.kind == "unknown"]


def rewrite(text: str) -> Rewrite:
    """``text`` with every old directive name replaced by its current one, and the notes."""
    lines = text.splitlines(keepends=True)
    notes: list[Note] = []
    continued = False  # the previous line ended in a backslash: this one is not a directive
    for index, line in enumerate(lines):
        body = line.rstrip("\r\n")
        starts_directive = not continued
        continued = body.endswith("\\")
        match = _DIRECTIVE.fullmatch(body)
        if not starts_directive or not match or body.lstrip().startswith("#"):
            continue
        number, name = index + 1, match["name"]
        key = name.lower()
        if key in _RENAMES:
            new = _RENAMES[key]
            lines[index] = _renamed(match, new) + line[len(body) :]
            notes.append(Note(number, "renamed", f"{name} -> {new}"))
            if new in HINTS:
                notes.append(Note(number, "hint", f"{new}: {HINTS[new]}"))
            if new == "FcgidMaxRequestsPerProcess" and match["rest"].split()[:1] == ["-1"]:
                notes.append(Note(number, "hint", f"{new} -1 is read as 0: no limit"))
        elif key in _REPLACED:
            notes.append(Note(number, "replaced", f"{name} {_REPLACED[key]}"))
        elif key not in _KNOWN:
            notes.append(Note(number, "unknown", f"{name} is not a directive this tool knows"))
    return Rewrite("".join(lines), notes)


def _renamed(match: re.Match, new: str) -> str:
    """The directive line with ``new`` as its name; a value aligned with spaces keeps its column."""
    rest = match["rest"]
    gap = len(rest) - len(rest.lstrip(" \t"))
    spaces = rest[:gap]
    if spaces and set(spaces) == {" "}:
        width = max(1, len(match["name"]) + gap - len(new))
        rest = " " * width + rest[gap:]
    return f"{match['indent']}{match['open'] or ''}{new}{rest}"


LEVEL = {
    "renamed": logging.INFO,
    "hint": logging.INFO,
    "replaced": logging.WARNING,
    "unknown": logging.WARNING,
}


def report(source: str, result: Rewrite) -> None:
    """Log each note with the file and line it is about; warnings for what needs a person."""
    for note in result.notes:
        log.log(LEVEL[note.kind], "%s:%d: %s", source, note.line, note.message)
    if not result.renamed:
        log.info("%s: no old directive names", source)


def _write_in_place(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, keeping its permissions."""
    mode = path.stat().st_mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(file: str, in_place: bool = False) -> int:
    """Rewrite ``file`` ('-': standard input), printing the result or writing it back."""
    if file == "-":
        if in_place:
            log.error("--in-place needs a file, not standard input")
            return 2
        source, text = "<stdin>", sys.stdin.read()
    else:
        path = Path(file)
        source = str(path)
        try:
            with path.open(newline="") as handle:  # keep \r\n line endings as they are
                text = handle.read()
        except OSError as err:
            log.error("cannot read %s: %s", path, err.strerror or err)
            return 1
    result = rewrite(text)
    report(source, result)

    if not in_place:
        sys.stdout.write(result.text)
    elif result.text != text:
        _write_in_place(path, result.text)
        log.info("%s: rewritten", path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``FILE [--in-place]``: print FILE with current directive names, or rewrite it."""
    parser = argparse.ArgumentParser(
        prog="python -m proven.fcgid",
        description="Rewrite old mod_fcgid and Apache 2.2 MPM directive names to today's; "
        "values, comments and indentation stay as they are.",
    )
    parser.add_argument("file", help="the configuration file ('-' reads standard input)")
    parser.add_argument(
        "--in-place", action="store_true", help="rewrite FILE instead of printing the result"
    )
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers and not log.handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    return run(args.file, args.in_place)


if __name__ == "__main__":
    sys.exit(main())
