"""Make veRL's process-group backend string valid when the device is the CPU.

veRL 0.9.1 hard-codes ``backend=f"cpu:gloo,{device}:{backend}"`` in
``verl.utils.distributed.initialize_global_process_group_ray``. The platform only
supplies ``device`` and ``backend``, so on the CPU platform the string is always
``"cpu:gloo,cpu:gloo"``, which torch rejects ("Duplicate device type cpu"). No
platform hook can avoid the duplicate: the device name must be "cpu" everywhere else.

The one fix that leaves veRL untouched is at the torch boundary: while the CPU
platform is selected, ``torch.distributed.init_process_group`` gets a thin wrapper
that maps a backend string made only of ``cpu:gloo`` pairs to plain ``"gloo"``.
Any other backend string passes through unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch.distributed as dist

_MARK = "__verl_rec_gloo_only__"


def normalize_backend(backend: Any) -> Any:
    """``"cpu:gloo,cpu:gloo"`` -> ``"gloo"``; everything else unchanged."""
    if not isinstance(backend, str):
        return backend
    pairs = [pair.strip().lower() for pair in backend.split(",")]
    return "gloo" if len(pairs) > 1 and set(pairs) == {"cpu:gloo"} else backend


def install_gloo_backend_fix() -> None:
    """Wrap ``torch.distributed.init_process_group`` once per process."""
    original: Callable[..., Any] = dist.init_process_group
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def init_process_group(*args: Any, **kwargs: Any) -> Any:
        if args:
            args = (normalize_backend(args[0]), *args[1:])
        elif "backend" in kwargs:
            kwargs["backend"] = normalize_backend(kwargs["backend"])
        return original(*args, **kwargs)

    setattr(init_process_group, _MARK, True)
    dist.init_process_group = init_process_group
