"""Choice of the accelerator and of the compute dtype for a model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InferenceError

if TYPE_CHECKING:
    import torch

_PREFERENCES = ("auto", "cpu", "cuda")
# Compute dtypes a model may be asked to run in. "fp32" is the default everywhere (with TF32
# matmuls allowed on CUDA: see inference.models.grounding_dino); "auto" is the best reduced precision the
# device has (bf16 where it is supported, else fp16 on CUDA; fp32 on the CPU).
DTYPES = ("fp32", "bf16", "fp16", "auto")


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


def cuda_supports_bf16(device: str) -> bool:
    """Whether the CUDA device `device` ("cuda" = the current one, "cuda:N") computes in bfloat16
    natively: compute capability 8.0 (Ampere) or later. Asks about THAT device, not the current
    one (torch.cuda.is_bf16_supported() looks at the current device only)."""
    import torch

    major, _minor = torch.cuda.get_device_capability(torch.device(device))
    return major >= 8


def pick_dtype(device: str, preference: str = "auto") -> torch.dtype:
    """The compute dtype for a model on `device`.

    - "fp32": float32 on any device.
    - "bf16": bfloat16; on CUDA only where `device` supports it (else `InferenceError`), and on
      the CPU too (CPU autocast runs bf16: slower than fp32 on most CPUs, but honoured).
    - "fp16": float16 on CUDA; refused on the CPU (`InferenceError`: CPU fp16 kernels are few
      and slow, and nothing is gained).
    - "auto": bfloat16 on a CUDA device that supports it, else float16; float32 on the CPU.
    """
    import torch

    choice = (preference or "auto").strip().lower()
    if choice not in DTYPES:
        raise ValueError(f"unknown dtype {preference!r}; use one of {', '.join(DTYPES)}")
    cuda = str(device).startswith("cuda")
    if choice == "fp32":
        return torch.float32
    if choice == "auto":
        if not cuda:
            return torch.float32
        return torch.bfloat16 if cuda_supports_bf16(device) else torch.float16
    if choice == "bf16":
        if cuda and not cuda_supports_bf16(device):
            name = torch.cuda.get_device_name(torch.device(device))
            raise InferenceError(
                f"bf16 was asked for but {device} ({name}) has no native bfloat16 (compute "
                "capability below 8.0): use fp16 or fp32"
            )
        return torch.bfloat16
    if not cuda:
        raise InferenceError(f"fp16 was asked for on {device}: fp16 runs on CUDA only; use fp32 or bf16")
    return torch.float16


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` says the device ran out of memory: torch's OutOfMemoryError, or any error
    whose message says so (a plain RuntimeError from older CUDA builds or the CPU allocator)."""
    import torch

    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def free_accelerator_memory() -> None:
    """Give the CUDA memory torch cached but no longer uses back to the device (no-op without CUDA)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
