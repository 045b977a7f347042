"""The built wheel, installed without the source tree, ships working recipes, builders and plugin.

Builds the wheel from a copy of the package's sources, installs it with ``pip --target`` into a
temp folder and runs everything from another temp folder with ``PYTHONPATH=<target>`` only (the
dependencies come from site-packages), so nothing can be read from this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "verl_rec")  # what the build reads
MY_RECIPE = """\
# a user's own recipe, built on the packaged ones through hydra.searchpath
defaults:
  - ppo_trainer
  - common/rec_r1_grpo
  - _self_

trainer:
  experiment_name: my_run
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the wheel, install it into a target folder; return the wheel, the target and a run env."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(root / "dist")],
                   check=True, cwd=root, capture_output=True, text=True)
    (wheel,) = (root / "dist").glob("verl_rec-*.whl")
    target = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, cwd=root, capture_output=True, text=True)
    run_dir = root / "run"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VERL_REC_DATA")}
    env.update(PYTHONPATH=str(target), HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
    return {"wheel": wheel, "target": target, "run_dir": run_dir, "env": env}


def run(installed: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([*args], cwd=installed["run_dir"], env=installed["env"], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_wheel_ships_recipes_license_and_plugin_entry_point(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert {"verl_rec/recipes/esci_bm25.yaml", "verl_rec/recipes/quickstart.yaml",
            "verl_rec/recipes/common/rec_r1_grpo.yaml", "verl_rec/data_preprocess/build_index.py",
            "verl_rec/cpu_backend/hf_rollout/adapter.py", "verl_rec/devkit/tiny_model.py",
            "verl_rec/recipes/quickstart_vaswani.yaml", "verl_rec/bundled/vaswani/doc-text.trec.gz",
            "verl_rec/bundled/vaswani/query-text.trec.gz", "verl_rec/bundled/vaswani/qrels.gz",
            "verl_rec/bundled/vaswani/NOTICE.md"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    entry_points = zipfile.ZipFile(installed["wheel"]).read(f"{dist_info}/entry_points.txt").decode()
    assert "[verl.plugins]\nverl_rec = verl_rec.integration.plugin" in entry_points
    assert "verl-rec-build-index = verl_rec.data_preprocess.build_index:main" in entry_points


def test_installed_package_is_the_one_imported_and_its_plugin_registers(installed):
    """``import verl`` loads our plugin from the target (the checkout's editable install is also
    on the machine: both declare the same entry point, loading it twice is a no-op)."""
    probe = (
        "import verl, sys, verl_rec\n"
        "from importlib.metadata import entry_points\n"
        "from verl.workers.rollout.base import get_rollout_class\n"
        "print(verl_rec.__file__)\n"
        "print(sys.modules['verl_rec.integration.plugin'].__file__)\n"
        "print(sys.modules[get_rollout_class('hf', 'async').__module__].__file__)\n"
        "print(sorted({ep.value for ep in entry_points(group='verl.plugins') if ep.name == 'verl_rec'}))\n"
    )
    out = run(installed, sys.executable, "-c", probe)
    *files, eps = out.stdout.strip().splitlines()
    target = installed["target"].resolve()
    for file in files:
        assert Path(file).resolve().is_relative_to(target), f"{file} is not from the installed wheel in {target}"
    assert eps == "['verl_rec.integration.plugin']"
    assert "registration with veRL failed" not in out.stderr


def test_recipes_folder_composes_with_main_ppo(installed):
    """``--config-dir $(python -m verl_rec.recipes)``: veRL's ppo_trainer + our common GRPO + the recipe."""
    recipes = Path(run(installed, sys.executable, "-m", "verl_rec.recipes").stdout.strip())
    assert recipes.resolve().is_relative_to(installed["target"].resolve()) and (recipes / "esci_bm25.yaml").is_file()
    out = run(installed, sys.executable, "-m", "verl.trainer.main_ppo", f"--config-dir={recipes}",
              "--config-name=esci_bm25", "--cfg", "job")
    cfg = yaml.safe_load(out.stdout)
    assert cfg["trainer"]["experiment_name"] == "esci_bm25"  # the recipe
    assert cfg["actor_rollout_ref"]["rollout"]["n"] == 12 and cfg["algorithm"]["adv_estimator"] == "grpo"  # common
    assert cfg["reward"]["reward_kwargs"]["retrieval"]["backend"] == "lucene"
    assert "ppo_epochs" in cfg["actor_rollout_ref"]["actor"]  # veRL's own ppo_trainer


def test_agent_recipe_finds_the_packaged_tool_config(installed):
    """``${verl_rec_path:recipes/tools/search_tool.yaml}`` resolves to the installed package's file."""
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert {"verl_rec/recipes/tools/search_tool.yaml", "verl_rec/recipes/common/search_agent.yaml"} <= set(names)
    recipes = Path(run(installed, sys.executable, "-m", "verl_rec.recipes").stdout.strip())
    out = run(installed, sys.executable, "-m", "verl.trainer.main_ppo", f"--config-dir={recipes}",
              "--config-name=esci_bm25_agent", "--cfg", "job", "--resolve")
    rollout = yaml.safe_load(out.stdout)["actor_rollout_ref"]["rollout"]
    tool_config = Path(rollout["multi_turn"]["tool_config_path"])
    assert tool_config.is_file() and tool_config.resolve().is_relative_to(installed["target"].resolve())
    assert rollout["agent"]["default_agent_loop"] == "rec_search_agent"


def test_own_recipe_builds_on_packaged_ones_through_the_search_path(installed):
    """A user's recipe in its own folder names ``common/rec_r1_grpo``; ``pkg://verl_rec.recipes`` provides it."""
    mine = installed["run_dir"] / "my_recipes"
    mine.mkdir(exist_ok=True)
    (mine / "my_run.yaml").write_text(MY_RECIPE)
    out = run(installed, sys.executable, "-m", "verl.trainer.main_ppo", f"--config-dir={mine}", "--config-name=my_run",
              "hydra.searchpath=[pkg://verl_rec.recipes]", "--cfg", "job")
    cfg = yaml.safe_load(out.stdout)
    assert cfg["trainer"]["experiment_name"] == "my_run"
    assert cfg["actor_rollout_ref"]["rollout"]["n"] == 12 and cfg["algorithm"]["adv_estimator"] == "grpo"
    assert cfg["reward"]["reward_manager"]["name"] == "RecR1RewardManager"


@pytest.mark.parametrize("module", ["build_index", "esci", "c4", "seqrec", "rerank", "trec"])
def test_builders_run_as_modules_of_the_installed_package(installed, module):
    out = run(installed, sys.executable, "-m", f"verl_rec.data_preprocess.{module}", "--help")
    assert out.stdout.startswith("usage:")


def test_console_scripts_and_quickstart_help(installed):
    bin_dir = installed["target"] / "bin"
    assert run(installed, str(bin_dir / "verl-rec-build-index"), "--help").stdout.startswith("usage:")
    assert Path(run(installed, str(bin_dir / "verl-rec-recipes")).stdout.strip(), "quickstart.yaml").is_file()
    assert "--verbose" in run(installed, sys.executable, "-m", "verl_rec.quickstart", "--help").stdout
