"""Compose a recipe exactly as ``main_ppo --config-dir <recipes> --config-name <recipe>`` does, at a cluster size.

``--config-dir`` keeps veRL's own config folder primary, so composing the packaged recipes folder
with ``hydra.searchpath=[pkg://verl.trainer.config]`` gives the same config ``main_ppo`` runs,
with the same override syntax (``key=value``, ``+key=value``, ``~key``).
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from verl_rec.recipes import RECIPES_DIR, recipe_names

#: a recipe header line that fixes its size: ``# preflight: 1 GPU by design: <why>``
SIZE_HEADER = re.compile(r"^#\s*preflight:\s*(\d+)\s*GPUs?\b[^:]*:?\s*(.*)$", re.IGNORECASE)
SIZE_KEYS = ("trainer.n_gpus_per_node", "trainer.nnodes")


@dataclass(frozen=True)
class RecipeSize:
    """The one cluster size a recipe is built for, and why (from its header)."""

    gpus: int
    reason: str


def recipe_path(name: str):
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"no recipe {name!r} in {RECIPES_DIR}; the recipes are {recipe_names()}")
    return path


def declared_sizes(name: str) -> RecipeSize | None:
    """The size a recipe's own header fixes (``# preflight: 1 GPU by design: ...``), or None: any size."""
    for line in recipe_path(name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        match = SIZE_HEADER.match(line)
        if match:
            return RecipeSize(gpus=int(match.group(1)), reason=match.group(2).strip())
    return None


def _sets(overrides: tuple[str, ...], key: str) -> bool:
    return any(o.lstrip("+~").split("=", 1)[0] == key for o in overrides)


@functools.lru_cache(maxsize=64)
def _composed(name: str, overrides: tuple[str, ...]) -> DictConfig:
    """Hydra's composition of ``name`` with ``overrides``, unresolved (one per recipe and overrides)."""
    recipe_path(name)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(RECIPES_DIR), version_base=None):
            return compose(config_name=name, overrides=["hydra.searchpath=[pkg://verl.trainer.config]", *overrides])
    finally:
        GlobalHydra.instance().clear()


def compose_for_gpus(name: str, gpus: int, nodes: int = 1, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The resolved config ``main_ppo`` would run for ``name`` on ``nodes`` x ``gpus``, plus ``overrides``.

    The trainer is given every GPU of a node (``trainer.n_gpus_per_node=gpus``) unless an override
    sets ``trainer.n_gpus_per_node`` itself (to leave GPUs to a retrieval service, say). The size is
    set on Hydra's composition before anything is resolved, as a command-line override would be.
    """
    overrides = tuple(overrides)
    cfg = copy.deepcopy(_composed(name, overrides))
    for key, value in zip(SIZE_KEYS, (gpus, nodes)):
        if not _sets(overrides, key):
            OmegaConf.update(cfg, key, value, merge=True)
    OmegaConf.resolve(cfg)
    return cfg
