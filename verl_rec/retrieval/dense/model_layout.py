"""Where an encoder's weights live and what a sentence-transformers folder asks for.

Read from the folder's JSON files alone (no sentence-transformers import), so that the
:class:`~verl_rec.retrieval.dense.encoders.Encoder` can serve a plain pipeline
(Transformer -> Pooling(cls|mean) -> [Normalize]) with its own batching.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

POOLINGS = ("cls", "mean")


@dataclass(frozen=True)
class StLayout:
    """What a sentence-transformers folder's modules ask for."""

    transformer_dir: Path
    pooling: str | None  # "cls" / "mean" / another ST mode / None
    normalize: bool
    max_length: int | None
    lower_case: bool
    simple: bool  # Transformer -> Pooling -> [Normalize] only


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _st_pooling_mode(config: Mapping[str, Any]) -> str | None:
    mode = config.get("pooling_mode")
    if isinstance(mode, list):
        mode = mode[0] if len(mode) == 1 else "+".join(mode)
    if isinstance(mode, str):
        return mode
    legacy = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_max_tokens": "max",
              "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens":
              "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
    active = [name for key, name in legacy.items() if config.get(key)]
    return "+".join(active) if active else None


def st_layout(folder: Path) -> StLayout | None:
    """What a local sentence-transformers folder asks for, or None if it is not one."""
    modules = _read_json(folder / "modules.json")
    if not isinstance(modules, list) or not modules:
        return None
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    transformer_dir, pooling, normalize = folder, None, False
    for module, kind in zip(modules, kinds):
        sub = folder / str(module.get("path", ""))
        if kind == "Transformer":
            transformer_dir = sub
        elif kind == "Pooling":
            pooling = _st_pooling_mode(_read_json(sub / "config.json"))
        elif kind == "Normalize":
            normalize = True
    bert_cfg = _read_json(transformer_dir / "sentence_bert_config.json") or _read_json(folder / "sentence_bert_config.json")
    max_length = bert_cfg.get("max_seq_length")
    simple = kinds[:2] == ["Transformer", "Pooling"] and set(kinds[2:]) <= {"Normalize"} and pooling in POOLINGS
    return StLayout(transformer_dir, pooling, normalize, int(max_length) if max_length else None,
                     bool(bert_cfg.get("do_lower_case", False)), simple)


_NOT_PYTORCH = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*"]


def resolve_model_folder(model: str) -> Path | None:
    """The local folder of ``model``: itself if it is a directory, else its hub snapshot.

    The snapshot comes from the hub cache (or the hub, where reachable and not
    ``HF_HUB_OFFLINE``), without ONNX/TF/Flax weights. None when it cannot be had: the
    transformers loader then reports why.
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=model, ignore_patterns=_NOT_PYTORCH))
    except Exception as exc:  # offline, unknown repo, invalid name: all mean "not available here"
        logger.debug("no local snapshot of %r (%s)", model, exc)
        return None
