"""The Milvus recipes train through stock ``python -m verl.trainer.main_ppo`` on the CPU, 2 GRPO
steps each, every reward asked of a real Milvus engine (milvus-lite 2.5's C++ core):

* ``esci_bm25_milvus`` as written: embedded Milvus Lite over a local folder, the engine started
  and owned by the node's retrieval service (and gone when the run ends);
* ``esci_dense_milvus`` against a URI: the same collection served by a separate Milvus Lite
  server process (``VERL_REC_MILVUS_URI=http://127.0.0.1:PORT``), reached as a cluster would be.

The collections are built from the recipes' (tiny ESCI) corpus by ``build_index --backend milvus``.
Changed only by the CPU sizes of :mod:`verl_rec.devkit.cpu_sizes` (and the URI).
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("pymilvus")

from helpers_recipe_data import RecipeData  # noqa: E402
from test_trainer_rec import plan_recipes, train_recipe  # noqa: E402

pytestmark = pytest.mark.slow

RECIPES_RUN = ("esci_bm25_milvus", "esci_dense_milvus")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("verl_rec_data")
    saved = os.environ.get("VERL_REC_DATA")
    os.environ["VERL_REC_DATA"] = str(root)  # the recipes' ${oc.env:VERL_REC_DATA} resolve here
    yield RecipeData(root)
    if saved is None:
        os.environ.pop("VERL_REC_DATA")
    else:
        os.environ["VERL_REC_DATA"] = saved


@pytest.fixture(scope="module")
def plan(data_root, tmp_path_factory):
    """Both recipes' data and Milvus collections, and one tiny model warmed up on their formats."""
    model, runs = plan_recipes(RECIPES_RUN, data_root, tmp_path_factory.mktemp("tiny"))
    assert {r.backend for r in runs.values()} == {"milvus"}
    return model, runs


def _train(plan, data_root, tmp_path, recipe: str, extra_env: dict[str, str]) -> None:
    """``train_recipe``'s checks, and no retrieval error from the live engine in either step."""
    result = train_recipe(plan, data_root, tmp_path, recipe, extra_env).result
    errors = {s: result.metrics[s].get("train-aux/retrieval_error/mean") for s in (1, 2)}
    print(f"[{recipe}] train-aux/retrieval_error/mean per step: {errors}")
    assert errors == {1: 0.0, 2: 0.0}, f"a live engine answered with retrieval errors: {errors}"


def test_esci_bm25_milvus_trains_against_embedded_milvus_lite(plan, data_root, tmp_path):
    from verl_rec.retrieval.index_metadata import read_index_metadata

    index = data_root.root / "esci" / "index_milvus"
    assert (index / "milvus.db").exists() and read_index_metadata(index)["backend"] == "milvus"
    _train(plan, data_root, tmp_path, "esci_bm25_milvus", {})


def test_esci_dense_milvus_trains_against_a_milvus_server_uri(plan, data_root, tmp_path):
    from verl_rec.retrieval.milvus.lite_process import LiteProcess, free_port

    folder = data_root.root / "esci" / "index_milvus_dense"
    engine = LiteProcess(folder / "milvus.db", port=free_port())  # the built collection, now behind a TCP port
    try:
        _train(plan, data_root, tmp_path, "esci_dense_milvus", {"VERL_REC_MILVUS_URI": engine.uri})
        assert engine.running(), "the server process died during the run"
    finally:
        engine.stop()
