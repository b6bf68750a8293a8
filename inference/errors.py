"""Errors raised by the model code in inference/ (plain exceptions: no Django, no torch types)."""

from __future__ import annotations


class InferenceError(Exception):
    """Base class of every error the model code raises on purpose."""


class ModelLoadError(InferenceError):
    """A model (weights, config or processor) could not be loaded; the message says what was tried."""
