"""``--device``: the accelerator a command runs on, checked against what this machine has before a model loads.

A GPU that is not there would otherwise fail deep in the CUDA driver with a traceback; here it is one
line naming the flag and the devices that exist.
"""

from __future__ import annotations


def resolve_device(text: str | None, flag: str = "--device") -> str:
    """``text`` as a torch device string (``None`` or ``"auto"``: cuda when available, else cpu), or a
    ValueError naming ``flag`` and what this machine has."""
    import torch  # here, not at import time: the CLI's parsers stay fast to build

    if text is None or text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError):
        raise ValueError(f"{flag} {text!r}: not a device name; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{flag} {text}: not available: this machine has no CUDA GPU (use --device cpu)")
        if device.index is not None and device.index >= count:
            names = ", ".join(f"cuda:{i}" for i in range(count))
            raise ValueError(f"{flag} {text}: not available: this machine has {count} GPU"
                             f"{'s' if count != 1 else ''} ({names})")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{flag} {text}: not available: this machine has no Apple MPS device (use --device cpu)")
    return text
