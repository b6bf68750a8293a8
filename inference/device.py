"""Choice of the accelerator and of the compute dtype for a model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InferenceError

if TYPE_CHECKING:
    import torch

_PREFERENCES = ("auto", "cpu", "cuda")


def pick_device(preference: str = "auto") -> str:
    """The torch device string to run on.

    "auto" gives "cuda" when a CUDA device is usable, else "cpu". "cpu" is always honoured;
    "cuda" (or "cuda:N") is honoured when CUDA is available and raises `InferenceError` otherwise,
    so that a worker configured for a GPU fails loudly instead of silently crawling on the CPU.
    """
    import torch

    choice = (preference or "auto").strip().lower()
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return "cpu"
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InferenceError(f"device {preference!r} was asked for but CUDA is not available here")
        return choice
    raise ValueError(f"unknown device preference {preference!r}; use one of {', '.join(_PREFERENCES)}")


def pick_dtype(device: str) -> torch.dtype:
    """The compute dtype for `device`: bfloat16 on a CUDA device that supports it, else float16;
    float32 on the CPU."""
    import torch

    if str(device).startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
