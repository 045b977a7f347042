"""OmegaConf resolvers the recipes use: ``${verl_rec.attn_implementation:}``.

FlashAttention-2 is veRL's default attention for the actor and reference models, but
``verl[vllm]`` (what a GPU setup installs) does not bring the ``flash-attn`` package, and a
model asked for ``flash_attention_2`` without it fails to load. The recipes therefore ask for
``flash_attention_2`` when ``flash_attn`` imports in the process that resolves the config
(veRL's TaskRunner), and for PyTorch's ``sdpa`` otherwise. ``sdpa`` is also correct with
``use_remove_padding``: transformers reads the packed sequences' boundaries from the position
ids (tests/test_attention.py). Force either with
``actor_rollout_ref.model.override_config.attn_implementation=<name>``; ``python -m
verl_rec.doctor --gpu`` says which one a machine gets, and why.
"""

from __future__ import annotations

from omegaconf import OmegaConf

FLASH = "flash_attention_2"
SDPA = "sdpa"
ATTN_RESOLVER = "verl_rec.attn_implementation"


def flash_attn_problem() -> str | None:
    """Why FlashAttention-2 cannot be used in this process (None: it can)."""
    try:
        from flash_attn import flash_attn_func  # noqa: F401  (loads the compiled CUDA extension)
    except ImportError as exc:
        return f"flash_attn does not import ({exc})" if exc.name != "flash_attn" else "flash-attn is not installed"
    except Exception as exc:  # a wheel built for another torch/CUDA can fail with OSError, RuntimeError, ...
        return f"flash_attn does not import ({type(exc).__name__}: {exc})"
    return None


def attn_implementation() -> str:
    """``flash_attention_2`` if flash-attn imports here, else ``sdpa``."""
    return FLASH if flash_attn_problem() is None else SDPA


def register_resolvers() -> None:
    """Register the recipes' resolvers (idempotent; the plugin and ``verl_rec.recipes`` call it)."""
    if not OmegaConf.has_resolver(ATTN_RESOLVER):
        OmegaConf.register_new_resolver(ATTN_RESOLVER, attn_implementation)


__all__ = ["ATTN_RESOLVER", "FLASH", "SDPA", "attn_implementation", "flash_attn_problem", "register_resolvers"]
