"""Which service a config gets, where it runs and what it reserves from Ray.

* One service per engine: the actor's name carries a digest of the backend, the absolute
  index path and the engine options (:func:`service_name`), so two jobs with different
  indexes on one Ray cluster never share a service, and two jobs with the same engine do.
* One per node: the name ends with the node id and the actor is pinned there
  (:mod:`.client`), so a reward worker always talks to the engine on its own node.
* A GPU engine (a dense encoder on ``cuda``, faiss on GPU) reserves its GPU from Ray
  (:func:`reserved_gpus`): Ray then shows the actor that GPU and gives it to no one else.
  A GPU engine that reserves none is refused, since Ray would hand the same GPU to a
  training worker and the two would share its memory unknowingly.
* ``use_gpu`` (faiss on the GPU) reserves a GPU only when faiss will use one
  (:func:`faiss_gpu_problem`): not for an HNSW index, nor under a faiss without GPU support;
  it then warns, naming the key, and the engine searches on the CPU (``use_gpu: require``
  is refused instead).

Plain data in, plain data out (the Ray lookups of a node's GPUs live in :mod:`.client`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from verl_rec.retrieval.base import is_engine_uri

if TYPE_CHECKING:  # placement reads a config's fields; the config checks itself with reserved_gpus
    from verl_rec.retrieval.service.config import ServiceConfig

DIGEST_CHARS = 12

logger = logging.getLogger(__name__)


class ServicePlacementError(ValueError):
    """A service config that cannot be placed as asked (says which key to change, and how)."""


def engine_identity(config: ServiceConfig) -> dict[str, Any]:
    """What decides the answers: backend, absolute index path (a URI as it is), engine options (not the batching)."""
    location = str(config.index_path)
    return {"backend": config.backend, "index_path": location if is_engine_uri(location) else os.path.abspath(location),
            "backend_options": dict(config.backend_options)}


def config_digest(config: ServiceConfig) -> str:
    """A short stable digest of :func:`engine_identity` (the same in every process)."""
    text = json.dumps(engine_identity(config), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def service_name(config: ServiceConfig, node_id: str) -> str:
    """The Ray actor name of ``config``'s service on node ``node_id``."""
    return f"{config.name}-{config.backend}-{config_digest(config)}@{node_id}"


def engine_devices(options: Mapping[str, Any]) -> list[str]:
    """The torch/faiss devices the engine options ask for (``cpu`` unless an option says otherwise).

    Read the way :class:`~verl_rec.retrieval.dense.retriever.DenseRetriever` reads them:
    ``encoder.device`` wins over ``device``; ``use_gpu`` puts the faiss index on ``cuda``.
    """
    encoder = options.get("encoder")
    device = encoder.get("device") if isinstance(encoder, Mapping) and encoder.get("device") else options.get("device")
    devices = [str(device or "cpu")]
    if options.get("use_gpu") not in (None, False):
        devices.append("cuda")
    return devices


def _is_gpu(device: str) -> bool:
    return device.split(":", 1)[0] == "cuda"


def faiss_gpu_problem(config: ServiceConfig) -> str | None:
    """Why ``backend_options.use_gpu`` will NOT put this dense index on a GPU; None when it will
    (or when this process cannot tell).

    Placement runs wherever the config is read (the reward worker, a preflight), not in the
    service actor, so it knows only two things: the faiss build installed in THIS process (GPU
    support or not; whether it sees a GPU is the actor's business, as Ray shows the actor its
    GPU only once reserved) and the index type its ``verl_rec_index.json`` records (faiss has
    no GPU HNSW). An index it cannot read here (a URI, a path only the workers' nodes hold)
    keeps the reservation; the actor's own check (:func:`~verl_rec.retrieval.dense.faiss_gpu.want_gpu`)
    still decides where faiss runs.
    """
    if config.backend != "dense" or config.backend_options.get("use_gpu") in (None, False):
        return None
    location = str(config.index_path)
    if not is_engine_uri(location):
        try:
            from verl_rec.retrieval.index_metadata import read_index_metadata

            kind = (read_index_metadata(location) or {}).get("kind")
        except (OSError, ValueError):
            kind = None
        if kind is not None and kind != "flat":
            return f"the index {location} is {kind!r} and faiss searches only a flat index on a GPU"
    from verl_rec.retrieval.dense.faiss_gpu import FAISS_GPU_HINT, faiss_has_gpu_build

    if not faiss_has_gpu_build():
        return f"the faiss installed here has no GPU support ({FAISS_GPU_HINT})"
    return None


_warned_unused: set[str] = set()


def engine_gpu_devices(config: ServiceConfig) -> list[str]:
    """The GPU devices the engine will use: :func:`engine_devices`, less a ``use_gpu`` faiss
    cannot honour (warned once per engine, naming the key; refused for ``use_gpu: require``)."""
    options = config.backend_options
    devices = engine_devices(options)
    problem = faiss_gpu_problem(config)
    if problem is None:
        return [d for d in devices if _is_gpu(d)]
    if options.get("use_gpu") == "require":
        raise ServicePlacementError(
            f"retrieval.backend_options.use_gpu is 'require', but {problem}. Use a flat index with a GPU faiss, "
            "or set use_gpu: false (the index searches on the CPU).")
    devices.remove("cuda")  # the entry use_gpu added; an encoder on cuda still counts
    digest = config_digest(config)
    if digest not in _warned_unused:
        _warned_unused.add(digest)
        logger.warning("verl-rec retrieval: retrieval.backend_options.use_gpu is set, but %s: the index searches on "
                       "the CPU and the service reserves no GPU for it. Set use_gpu: false to silence this.", problem)
    return [d for d in devices if _is_gpu(d)]


def uses_gpu(config: ServiceConfig) -> bool:
    return bool(engine_gpu_devices(config))


def reserved_gpus(config: ServiceConfig) -> float:
    """GPUs the service actor reserves from Ray (``num_gpus``).

    ``config.num_gpus`` when set; otherwise 1 for an engine on a GPU and 0 on the CPU (a
    ``use_gpu`` faiss cannot honour is on the CPU: :func:`faiss_gpu_problem`). A GPU engine
    with ``num_gpus: 0``, or a device index Ray will not show the actor, is refused.
    """
    gpu_devices = engine_gpu_devices(config)
    gpus = float(config.num_gpus) if config.num_gpus is not None else (1.0 if gpu_devices else 0.0)
    if gpus < 0:
        raise ServicePlacementError(f"retrieval.num_gpus must be >= 0, got {config.num_gpus}")
    if not gpu_devices:
        return gpus
    where = f"the {config.backend} engine runs on {', '.join(gpu_devices)} (retrieval.backend_options)"
    if gpus == 0:
        raise ServicePlacementError(
            f"{where} but retrieval.num_gpus is 0: Ray would not know that the service uses a GPU and would give "
            "it to a training worker too. Set retrieval.num_gpus (1, or a fraction such as 0.2 to share a spare "
            "GPU with other services), or run the engine on the CPU (device: cpu, use_gpu: false).")
    visible = max(1, math.ceil(gpus))  # Ray sets CUDA_VISIBLE_DEVICES to the GPU(s) it reserved
    for device in gpu_devices:
        index = device.split(":", 1)[1] if ":" in device else "0"
        if not index.isdigit() or int(index) >= visible:
            raise ServicePlacementError(
                f"{where}, but the service sees only the {visible} GPU(s) Ray reserves for it, as cuda:0"
                f"{f'..cuda:{visible - 1}' if visible > 1 else ''}: use device 'cuda' (Ray picks the GPU) "
                "or raise retrieval.num_gpus.")
    return gpus


def check_node_gpus(config: ServiceConfig, node_id: str, total: float, available: float | None) -> None:
    """Refuse to start a service that asks a node for more GPUs than Ray has free there (instead
    of leaving it pending forever while every reward waits on it)."""
    gpus = reserved_gpus(config)
    if gpus <= 0:
        return
    what = f"the retrieval service ({config.backend}, {config.index_path}) asks Ray for {gpus:g} GPU on node {node_id}"
    if total < gpus:
        raise ServicePlacementError(
            f"{what}, which has {total:g} GPU(s) in Ray. Run the engine on the CPU (device: cpu), or start the "
            "reward workers on a node with a GPU.")
    if available is not None and available < gpus:
        raise ServicePlacementError(
            f"{what}, but only {available:g} of its {total:g} GPU(s) are free (veRL's workers or other services hold "
            "the others). Leave a GPU out of the trainer (trainer.n_gpus_per_node below the node's GPU count), lower "
            "retrieval.num_gpus to what is free, or run the engine on the CPU (device: cpu).")


__all__ = ["ServicePlacementError", "check_node_gpus", "config_digest", "engine_devices", "engine_gpu_devices",
           "engine_identity", "faiss_gpu_problem", "reserved_gpus", "service_name", "uses_gpu"]
