"""The installed stack is the one veRL pins for GPU users, and faiss comes as exactly one build.

Reads veRL's own metadata, ``pyproject.toml``, ``scripts/setup.sh`` and ``docs/stack.md``:
a veRL upgrade that moves a pin, or a setup branch that installs both faiss builds, fails here.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from verl_rec.retrieval.dense.faiss_gpu import (
    FAISS_CPU_REQUIREMENT,
    FAISS_GPU_HINT,
    FAISS_GPU_INSTALL,
    FAISS_GPU_REQUIREMENT,
)

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]
FAISS_BUILDS = {"faiss-cpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss-gpu"}


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


@pytest.fixture(scope="module")
def setup_branches() -> tuple[str, str]:
    """(GPU branch, CPU branch) of scripts/setup.sh's install step."""
    text = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    match = re.search(r'if \[\[ "\$\{VERL_REC_GPU:-0\}" == "1" \]\]; then\n(.*?)\nelse\n(.*?)\nfi\n', text, re.DOTALL)
    assert match, "scripts/setup.sh: no `if VERL_REC_GPU ... else ... fi` install step found"
    return match.group(1), match.group(2)


def _commands(branch: str) -> list[str]:
    return [line.strip() for line in branch.splitlines() if line.strip() and not line.strip().startswith("#")]


def _installed_extras(branch: str) -> set[str]:
    extras = set()
    for line in _commands(branch):
        for group in re.findall(r"-e '\.\[([^\]]*)\]'", line):
            extras.update(name.strip() for name in group.split(","))
    return extras


def _verl_pin(package: str, extra: str) -> str:
    for line in metadata.requires("verl") or []:
        requirement = Requirement(line)
        if requirement.name == package and requirement.marker and requirement.marker.evaluate({"extra": extra}):
            pins = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            if pins:
                return pins[0]
    raise AssertionError(f"veRL {metadata.version('verl')} does not pin {package} in its [{extra}] extra")


def _base_version(version: str) -> str:
    return version.split("+", 1)[0]


def test_faiss_is_one_extra_and_each_setup_branch_installs_one_build(project, setup_branches):
    hard = [Requirement(r).name for r in project["dependencies"]]
    assert not FAISS_BUILDS & set(hard), f"a faiss build is a hard dependency ({hard}): it lands beside the other one"
    extras = {name: [Requirement(r) for r in reqs] for name, reqs in project["optional-dependencies"].items()}
    faiss_in = {name: [str(r) for r in reqs if r.name in FAISS_BUILDS] for name, reqs in extras.items()}
    assert faiss_in["cpu"] == [FAISS_CPU_REQUIREMENT] and faiss_in["gpu"] == [FAISS_GPU_REQUIREMENT]
    assert all(not found for name, found in faiss_in.items() if name not in ("cpu", "gpu"))

    gpu, cpu = setup_branches
    assert "gpu" in _installed_extras(gpu) and "cpu" not in _installed_extras(gpu)
    assert "cpu" in _installed_extras(cpu) and "gpu" not in _installed_extras(cpu)
    gpu_commands, cpu_commands = _commands(gpu), _commands(cpu)
    # the other build goes first, before the extra that brings this one
    removal = next(i for i, c in enumerate(gpu_commands) if "pip uninstall -y faiss-cpu" in c)
    assert removal < next(i for i, c in enumerate(gpu_commands) if "[gpu" in c)
    assert any("pip uninstall -y faiss-gpu-cu12" in c for c in cpu_commands)


def test_the_faiss_gpu_hint_is_what_setup_does(setup_branches):
    from verl_rec.doctor import GPU_CHECKS
    from verl_rec.retrieval.dense.faiss_gpu import want_gpu

    removal, install = FAISS_GPU_INSTALL.split(" && ")
    assert removal in setup_branches[0]  # the GPU branch removes faiss-cpu exactly so
    assert install == f"pip install '{FAISS_GPU_REQUIREMENT}'"  # and installs the gpu extra's faiss
    assert "VERL_REC_GPU=1 bash scripts/setup.sh" in FAISS_GPU_HINT and FAISS_GPU_INSTALL in FAISS_GPU_HINT
    assert FAISS_GPU_HINT in GPU_CHECKS["faiss GPU"].advice
    with pytest.raises(RuntimeError, match=re.escape(FAISS_GPU_HINT)):  # this faiss (CPU build) cannot
        want_gpu("require", "flat")


def test_the_cpu_stack_is_the_gpu_stack_but_torch(project, setup_branches):
    transformers_pin = _verl_pin("transformers", "vllm")
    assert _verl_pin("transformers", "cpu") == transformers_pin
    cpu_extra = {Requirement(r).name: Requirement(r) for r in project["optional-dependencies"]["cpu"]}
    assert str(cpu_extra["transformers"].specifier) == f"=={transformers_pin}", \
        "pyproject's [cpu] extra must pin transformers to verl[vllm]'s pin"
    assert metadata.version("transformers") == transformers_pin, (
        f"transformers {metadata.version('transformers')} is installed, GPU users get {transformers_pin}: "
        "run bash scripts/setup.sh")

    setup_torch = re.search(r"VERL_REC_TORCH:-torch==([0-9.]+)", setup_branches[1])
    assert setup_torch, "scripts/setup.sh's CPU branch must pin torch (VERL_REC_TORCH:-torch==X)"
    gpu_torch = _verl_pin("torch", "vllm")
    docs = (ROOT / "docs" / "stack.md").read_text(encoding="utf-8")
    # the docs name both torch versions and the shared transformers pin, with the reason
    assert f"torch=={gpu_torch}" in docs and setup_torch.group(1) in docs and transformers_pin in docs
    assert _base_version(metadata.version("torch")) == setup_torch.group(1)


def test_a_missing_faiss_names_both_builds(monkeypatch):
    import sys

    from verl_rec.retrieval.dense.faiss_gpu import faiss_has_gpu_build, require_faiss

    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` fails as if neither wheel were installed
    with pytest.raises(ImportError, match=re.escape(FAISS_CPU_REQUIREMENT) + ".*" + re.escape(FAISS_GPU_INSTALL)):
        require_faiss()
    assert faiss_has_gpu_build() is False  # placement then reserves no GPU for use_gpu
