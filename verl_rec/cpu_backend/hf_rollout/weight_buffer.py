"""The actor's weights as one flat byte buffer, for the trip from training worker to HF server.

A dict of a few hundred tensors crosses Ray by pickle: every tensor is serialized, copied into
the object store and unpickled again. One contiguous numpy buffer crosses it with a single copy
into the object store, and the server reads it in place (``python -m bench.weight_sync``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

#: every tensor starts on a 64-byte boundary, so that any dtype can be viewed in place
ALIGNMENT = 64


@dataclass(frozen=True)
class TensorSlot:
    """Where one named tensor lies in the buffer."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int
    nbytes: int


def _aligned(offset: int) -> int:
    return -(-offset // ALIGNMENT) * ALIGNMENT


def layout(tensors: list[tuple[str, torch.Tensor]]) -> tuple[list[TensorSlot], int]:
    """The slots of ``tensors`` in order, and the buffer size they need."""
    slots, offset = [], 0
    for name, tensor in tensors:
        offset = _aligned(offset)
        nbytes = tensor.numel() * tensor.element_size()
        slots.append(TensorSlot(name, tensor.dtype, tuple(tensor.shape), offset, nbytes))
        offset += nbytes
    return slots, offset


def pack(weights: Iterable[tuple[str, torch.Tensor]], reuse: np.ndarray | None = None) -> tuple[np.ndarray, list[TensorSlot]]:
    """Copy ``weights`` into one uint8 buffer (``reuse`` when it has the right size) and say where each lies."""
    tensors = [(name, tensor.detach()) for name, tensor in weights]
    slots, size = layout(tensors)
    buffer = reuse if reuse is not None and reuse.nbytes == size else np.empty(size, dtype=np.uint8)
    flat = torch.from_numpy(buffer)
    for slot, (_, tensor) in zip(slots, tensors):
        flat[slot.offset : slot.offset + slot.nbytes].copy_(tensor.contiguous().reshape(-1).view(torch.uint8).cpu())
    return buffer, slots


def unpack(buffer: np.ndarray, slots: list[TensorSlot]) -> dict[str, torch.Tensor]:
    """Views of ``buffer`` as the named tensors; nothing is copied, so the caller copies what it keeps."""
    with warnings.catch_warnings():
        # a buffer from Ray's object store is read-only; these views are only read (load_state_dict copies)
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        flat = torch.from_numpy(buffer)
    return {
        slot.name: flat[slot.offset : slot.offset + slot.nbytes].view(slot.dtype).view(slot.shape) for slot in slots
    }
