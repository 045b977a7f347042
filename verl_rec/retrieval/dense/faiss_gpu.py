"""Where faiss runs: GPU when asked for and available, else CPU (or an error, if required).

``use_gpu=True`` uses faiss' GPU build when it is installed and sees a GPU, and falls back to
CPU with a warning otherwise; ``use_gpu="require"`` raises instead. Only the flat index runs
on GPU (faiss has no GPU HNSW); an HNSW index always searches on CPU. ``use_gpu`` puts the flat
vectors in GPU memory, next to the rollout engine's: leave it off unless the GPU has room.
The retrieval service reserves a Ray GPU for ``use_gpu`` only when this check can pass
(:func:`verl_rec.retrieval.service.placement.faiss_gpu_problem`); this one stays the last word,
made where the index is opened.
"""

from __future__ import annotations

import logging
from types import ModuleType

logger = logging.getLogger(__name__)

#: the faiss builds of the package's ``cpu`` and ``gpu`` extras (pyproject.toml; scripts/setup.sh picks one)
FAISS_CPU_REQUIREMENT = "faiss-cpu>=1.9"
FAISS_GPU_REQUIREMENT = "faiss-gpu-cu12>=1.9"
#: how to get faiss' GPU build: both wheels ship the top-level ``faiss`` package, so never both
FAISS_GPU_INSTALL = f"pip uninstall -y faiss-cpu && pip install '{FAISS_GPU_REQUIREMENT}'"
FAISS_GPU_HINT = f"on a GPU machine: VERL_REC_GPU=1 bash scripts/setup.sh, or {FAISS_GPU_INSTALL}"


def require_faiss() -> ModuleType:
    """``import faiss``, or an ImportError that says which of the two builds to install."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(f"the dense backend needs faiss, which is not installed ({exc}): pip install "
                          f"'{FAISS_CPU_REQUIREMENT}' (CPU), or {FAISS_GPU_INSTALL} (GPU); scripts/setup.sh "
                          "installs the right one") from exc
    return faiss


def faiss_has_gpu_build() -> bool:
    """True when this process' faiss is a GPU build (whether or not it sees a GPU here)."""
    try:
        faiss = require_faiss()
    except ImportError:
        return False
    return hasattr(faiss, "StandardGpuResources")


def faiss_gpu_available() -> bool:
    """True when this faiss build has GPU support and sees at least one GPU."""
    faiss = require_faiss()
    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


def want_gpu(use_gpu: bool | str, kind: str) -> bool:
    """Resolve ``use_gpu`` (False / True / "require") against what faiss and the index allow."""
    if use_gpu not in (False, True, "require"):
        raise ValueError(f"use_gpu must be False, True or 'require', got {use_gpu!r}")
    if not use_gpu:
        return False
    problem = None
    if not faiss_gpu_available():
        problem = f"this faiss has no GPU support or sees no GPU ({FAISS_GPU_HINT})"
    elif kind != "flat":
        problem = f"faiss has no GPU {kind} index"
    if problem is None:
        return True
    if use_gpu == "require":
        raise RuntimeError(f"use_gpu='require' but {problem}")
    logger.warning("use_gpu=True but %s: using the CPU", problem)
    return False


def to_gpu(index):
    import faiss

    resources = faiss.StandardGpuResources()
    gpu_index = faiss.index_cpu_to_gpu(resources, 0, index)
    return gpu_index, resources  # the resources must outlive the index


__all__ = ["FAISS_CPU_REQUIREMENT", "FAISS_GPU_HINT", "FAISS_GPU_INSTALL", "FAISS_GPU_REQUIREMENT", "faiss_gpu_available",
           "faiss_has_gpu_build", "require_faiss", "to_gpu", "want_gpu"]
