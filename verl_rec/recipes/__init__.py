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
PACKAGE_DIR = RECIPES_DIR.parent
SEARCHPATH = "pkg://verl_rec.recipes"
#: ``${verl_rec_path:recipes/tools/search_tool.yaml}`` in a recipe: a file shipped in the package
PATH_RESOLVER = "verl_rec_path"


def package_file(relative: str) -> str:
    """The absolute path of a file shipped in the ``verl_rec`` package (``recipes/tools/x.yaml``).

    veRL reads some config files by path only (``multi_turn.tool_config_path``): a recipe names
    them with this resolver so that they are found wherever the package is installed.
    """
    path = (PACKAGE_DIR / relative).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"${{{PATH_RESOLVER}:{relative}}}: no such file in the verl_rec package ({path})")
    return str(path)


def register_resolvers() -> None:
    """Make ``${verl_rec_path:...}`` resolvable (the plugin calls this in every veRL process)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(PATH_RESOLVER):
        OmegaConf.register_new_resolver(PATH_RESOLVER, package_file)


def main() -> None:
    """``python -m verl_rec.recipes`` / ``verl-rec-recipes``: print the folder for ``--config-dir``."""
    print(RECIPES_DIR)


def recipe_names() -> list[str]:
    """The recipes a ``--config-name`` can choose (``common/`` holds shared parts, not recipes)."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


register_resolvers()  # composing a recipe in this process (tests, scripts) resolves its paths too
