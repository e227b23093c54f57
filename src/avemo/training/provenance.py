"""What a training run ran on, recorded in its summary (the report's hardware line reads it).

The report job runs elsewhere (often a CPU node), so its own hardware says nothing about where
the models were trained; each training summary carries these facts instead.
"""

from __future__ import annotations

import platform
from typing import Any

import torch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def run_facts(device: torch.device, dtype: torch.dtype | None, model: torch.nn.Module,
              nondeterministic: str | None) -> dict[str, Any]:
    """``device_name`` (the GPU's or the CPU's), ``amp_dtype`` (``bfloat16``, ``float16`` or
    None for fp32), ``cudnn_version`` and ``cuda_version`` (None off CUDA), ``torch_version``,
    ``deterministic`` (strict deterministic kernels) and ``nondeterministic_ops`` (the model's
    op without a deterministic kernel on this device, or None)."""
    cuda = device.type == "cuda"
    return {
        "device_name": device_name(device),
        "amp_dtype": str(dtype).removeprefix("torch.") if dtype is not None else None,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "cuda_version": torch.version.cuda if cuda else None,
        "torch_version": torch.__version__,
        "deterministic": nondeterministic is None,
        "nondeterministic_ops": nondeterministic,
    }
