"""A ``torch.cuda``-shaped namespace for the CPU.

veRL calls ``get_torch_device().<fn>()`` in ~80 places (empty_cache, mem_get_info,
get_rng_state, memory_allocated, ...). ``torch.cpu`` lacks most of these, so the CPU
platform hands out this module instead: memory and cache calls become harmless
no-ops or host-memory figures, RNG calls go to torch's default CPU generator, and
anything else (Stream, Event, current_stream, ...) falls through to ``torch.cpu``.
"""

from __future__ import annotations

import types
from typing import Any

import torch


def _host_memory() -> tuple[int, int]:
    """(available, total) host memory in bytes."""
    import psutil

    vm = psutil.virtual_memory()
    return int(vm.available), int(vm.total)


class CpuDeviceModule(types.ModuleType):
    """Module object exposing the subset of the ``torch.cuda`` API veRL uses."""

    def __init__(self) -> None:
        super().__init__("verl_rec_cpu_device", __doc__)

    # -- devices -------------------------------------------------------------------
    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return True

    def device_count(self) -> int:
        return 1

    def current_device(self) -> str:
        return "cpu"  # as torch.cpu.current_device(); usable in tensor.to(...)

    def set_device(self, device: Any) -> None:
        """There is one CPU device; selecting it is a no-op."""

    def synchronize(self, device: Any = None) -> None:
        """CPU ops are synchronous."""

    def get_device_name(self, device: Any = None) -> str:
        return "CPU"

    def get_device_capability(self, device: Any = None) -> tuple[int | None, int | None]:
        return None, None

    def get_device_properties(self, device: Any = None) -> types.SimpleNamespace:
        return types.SimpleNamespace(name="CPU", total_memory=_host_memory()[1])

    # -- memory: host memory is not pooled by torch, so there is nothing to free ---
    def empty_cache(self) -> None:
        pass

    def ipc_collect(self) -> None:
        pass

    def set_per_process_memory_fraction(self, fraction: float, device: Any = None) -> None:
        pass

    def mem_get_info(self, device: Any = None) -> tuple[int, int]:
        return _host_memory()

    def memory_allocated(self, device: Any = None) -> int:
        return 0

    def memory_reserved(self, device: Any = None) -> int:
        return 0

    def max_memory_allocated(self, device: Any = None) -> int:
        return 0

    def max_memory_reserved(self, device: Any = None) -> int:
        return 0

    def reset_peak_memory_stats(self, device: Any = None) -> None:
        pass

    def reset_accumulated_memory_stats(self, device: Any = None) -> None:
        pass

    # -- RNG: the CPU generator is torch's default generator -----------------------
    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def get_rng_state(self, device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    def set_rng_state(self, state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)

    def __getattr__(self, name: str) -> Any:
        # Only called for names not defined above: Stream, Event, stream, current_stream, ...
        return getattr(torch.cpu, name)


cpu_device_module = CpuDeviceModule()
