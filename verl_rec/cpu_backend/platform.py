"""The "cpu" entry in veRL's platform registry (``verl.plugin.platform``).

Without it, platform detection falls back to "nvidia" on a CPU-only host and
``trainer.device=cpu`` is rewritten to cuda. veRL selects a platform with its own
environment variable: ``VERL_PLATFORM=cpu``. The platform is never auto-detected
(``is_platform_available`` is False), so installing this package changes nothing on
GPU hosts.

Ray: the resource name stays "GPU". The trainer's resource check and placement
groups count Ray GPUs, so a CPU run declares logical ones
(``ray_init.num_gpus``) and each training worker holds one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

from verl_rec.cpu_backend.device import cpu_device_module
from verl_rec.cpu_backend.names import PLATFORM_ENV, PLATFORM_NAME


def cpu_platform_selected() -> bool:
    """True when this process runs veRL on the CPU platform."""
    return os.environ.get(PLATFORM_ENV, "").strip().lower() == PLATFORM_NAME


class CpuPlatform(PlatformBase):
    """Host CPU as a single logical accelerator, talking gloo."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return cpu_device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Opt-in only (VERL_PLATFORM=cpu): never win auto-detection over a real accelerator.
        return False

    def current_device(self) -> str:  # type: ignore[override]
        # veRL uses this as a device (``tensor.to(get_device_id())``); the int 0 would
        # mean "accelerator 0" to torch. "cpu" is what ``torch.cpu.current_device()`` returns.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        pass

    def synchronize(self, device_index: int | None = None) -> None:
        pass

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        pass

    def empty_cache(self) -> None:
        pass

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets this for actors holding logical "GPU" resources; harmless on CPU.
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None:
        pass

    def profiler_stop(self) -> None:
        pass

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def register_cpu_platform() -> None:
    """Add the platform to veRL's registry (idempotent)."""
    if PlatformRegistry.get(PLATFORM_NAME) is not CpuPlatform:
        PlatformRegistry.register(platform=PLATFORM_NAME)(CpuPlatform)
