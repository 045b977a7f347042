"""Where faiss runs: GPU when asked for and available, else CPU (or an error, if required).

``use_gpu=True`` uses faiss' GPU build when it is installed and sees a GPU, and falls back to
CPU with a warning otherwise; ``use_gpu="require"`` raises instead. Only the flat index runs
on GPU (faiss has no GPU HNSW); an HNSW index always searches on CPU. ``use_gpu`` puts the flat
vectors in GPU memory, next to the rollout engine's: leave it off unless the GPU has room.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def faiss_gpu_available() -> bool:
    """True when this faiss build has GPU support and sees at least one GPU."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


def want_gpu(use_gpu: bool | str, kind: str) -> bool:
    """Resolve ``use_gpu`` (False / True / "require") against what faiss and the index allow."""
    if use_gpu not in (False, True, "require"):
        raise ValueError(f"use_gpu must be False, True or 'require', got {use_gpu!r}")
    if not use_gpu:
        return False
    problem = None
    if not faiss_gpu_available():
        problem = "this faiss has no GPU support or sees no GPU (pip install faiss-gpu-cu12 on a GPU machine)"
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


__all__ = ["faiss_gpu_available", "to_gpu", "want_gpu"]
