"""veRL's stock FSDP engines, registered for device "cpu" in ``EngineRegistry``.

veRL registers ``FSDPEngineWithLMHead``/``FSDPEngineWithValueHead`` for cuda and npu
only, so ``EngineRegistry.new`` fails on the CPU platform. The engines run on CPU with
FSDP2 (FSDP1 needs a GPU for ``sync_module_states``) except for one detail: a
forward-only engine (the reference model) is wrapped with FSDP2
``CPUOffloadPolicy(pin_memory=True)``, and pinning memory needs an accelerator. On the
CPU there is nothing to offload to, so the registered classes are the stock ones
with that one decision scoped out: while the FSDP wrapper is built, the engine is
treated as a training engine; everything else (bf16 weights, no optimizer, no
backward) still follows ``forward_only``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

FSDP_ENGINE_MODULE = "verl.workers.engine.fsdp.transformer_impl"
DEVICE = "cpu"
_BACKENDS = ["fsdp", "fsdp2"]
_ENGINES = {"language_model": "FSDPEngineWithLMHead", "value_model": "FSDPEngineWithValueHead"}


def _without_pinned_offload(engine_cls: type) -> type:
    """Subclass of a stock FSDP engine whose forward-only wrapper skips the pinned CPU offload."""

    def _build_fsdp_module(self: Any, module: Any) -> Any:
        forward_only = self.engine_config.forward_only
        self.engine_config.forward_only = False  # a mutable field of veRL's EngineConfig
        try:
            return super(cpu_cls, self)._build_fsdp_module(module)
        finally:
            self.engine_config.forward_only = forward_only

    cpu_cls = type(
        f"Cpu{engine_cls.__name__}",
        (engine_cls,),
        {"_build_fsdp_module": _build_fsdp_module, "__module__": __name__, "__doc__": engine_cls.__doc__},
    )
    return cpu_cls


def register_cpu_engines(module: ModuleType) -> None:
    """Called with the imported ``transformer_impl`` module (installed as a post-import hook by the plugin)."""
    from verl.workers.engine.base import EngineRegistry

    for model_type, class_name in _ENGINES.items():
        registered = EngineRegistry._engines.get(model_type, {})
        if all(DEVICE in registered.get(backend, {}) for backend in _BACKENDS):
            continue  # idempotent: the registry asserts on double registration
        EngineRegistry.register(model_type=model_type, backend=_BACKENDS, device=DEVICE)(
            _without_pinned_offload(getattr(module, class_name))
        )
