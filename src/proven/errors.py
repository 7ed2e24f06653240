"""The project's errors: each says what failed and what to do next."""

from __future__ import annotations


class ProvenError(Exception):
    """A failure the user can act on; ``hint`` says what to do next."""

    hint: str = ""

    def __init__(self, message: str = "", hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n  next: {self.hint}" if self.hint else text


class HostError(ProvenError):
    """The host lacks something the lab needs (a package, a daemon, root)."""


class VMError(ProvenError):
    """The lab VM could not be created, reached or destroyed."""
