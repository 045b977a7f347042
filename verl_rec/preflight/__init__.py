"""The GPU preflight: compose a recipe as ``main_ppo`` does and replay veRL 0.9.1's worker-time checks.

veRL's start-up validation (``validate_config``) passes recipes that its workers then kill on
real GPUs (a micro-batch that does not divide a GPU's rows, a rollout TP wider than the
world). This package replays those checks from veRL's own config objects on any machine, so a
recipe is known to start before a GPU is rented. veRL glue: it imports veRL and Hydra, and the
retrieval service's placement rules (:func:`verl_rec.retrieval.service.placement.reserved_gpus`).

    python -m verl_rec.preflight --recipe esci_bm25 --gpus 8 [--nodes 2] [overrides...]
"""

from verl_rec.preflight.checks import run_preflight
from verl_rec.preflight.compose import RecipeSize, compose_for_gpus, declared_sizes
from verl_rec.preflight.report import Finding, Report

__all__ = ["Finding", "RecipeSize", "Report", "compose_for_gpus", "declared_sizes", "run_preflight"]
