"""The training recipes: Hydra configs for stock ``main_ppo``, shipped as package data.

An installed verl-rec hands them to ``main_ppo`` with ``--config-dir``::

    python -m verl.trainer.main_ppo --config-dir "$(python -m verl_rec.recipes)" --config-name esci_bm25

Your own recipe, in your own folder, can build on ours through Hydra's search path (Hydra 1.3
looks up the *primary* config before it applies a command-line ``hydra.searchpath``, so the
recipe you name must live in ``--config-dir``; what it includes may come from here)::

    # my_recipes/my_run.yaml:  defaults: [esci_bm25, _self_]   (or: [ppo_trainer, common/rec_r1_grpo, _self_])
    python -m verl.trainer.main_ppo --config-dir my_recipes --config-name my_run \\
        'hydra.searchpath=[pkg://verl_rec.recipes]'

From a checkout, ``--config-dir recipes`` also works (``recipes`` is a link to this folder).
"""

from __future__ import annotations

from pathlib import Path

from verl_rec.recipes.resolvers import register_resolvers

register_resolvers()  # ${verl_rec.attn_implementation:} in the recipes

RECIPES_DIR = Path(__file__).resolve().parent
SEARCHPATH = "pkg://verl_rec.recipes"


def main() -> None:
    """``python -m verl_rec.recipes`` / ``verl-rec-recipes``: print the folder for ``--config-dir``."""
    print(RECIPES_DIR)


def recipe_names() -> list[str]:
    """The recipes a ``--config-name`` can choose (``common/`` holds shared parts, not recipes)."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
