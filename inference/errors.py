"""Errors raised by the model code in inference/ (plain exceptions: no Django, no torch types)."""

from __future__ import annotations


class InferenceError(Exception):
    """Base class of every error the model code raises on purpose."""


class ModelLoadError(InferenceError):
    """A model (weights, config or processor) could not be loaded; the message says what was tried."""


class ModelUnavailable(ModelLoadError):
    """A model name that is not in the configured list, or whose local files cannot be loaded. The
    message names the model only: whether (and where) a path exists on this server is said in the
    server log, never to the user who chose the name."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f'The {kind} "{name}" is not available on this server.')
        self.kind, self.name = kind, name
