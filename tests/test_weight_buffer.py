"""The flat weight buffer the hf rollout's weight sync ships through Ray."""

from __future__ import annotations

import torch

from verl_rec.cpu_backend.hf_rollout.weight_buffer import ALIGNMENT, pack, unpack


def _weights() -> list[tuple[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        ("embed.weight", torch.randn(7, 5, generator=generator)),
        ("norm.weight", torch.randn(3, generator=generator, dtype=torch.float64)),
        ("half.weight", torch.randn(4, 3, generator=generator).to(torch.bfloat16)),
        ("transposed", torch.randn(3, 4, generator=generator).t()),  # not contiguous
        ("scalar", torch.tensor(2.5)),
        ("mask", torch.tensor([True, False, True])),
        ("empty", torch.empty(0, 4)),
    ]


def test_unpack_gives_back_every_tensor_exactly() -> None:
    weights = _weights()
    buffer, slots = pack(iter(weights))
    assert all(slot.offset % ALIGNMENT == 0 for slot in slots)
    restored = unpack(buffer, slots)
    assert list(restored) == [name for name, _ in weights]
    for name, tensor in weights:
        assert restored[name].dtype == tensor.dtype and restored[name].shape == tensor.shape
        assert torch.equal(restored[name], tensor)


def test_pack_reuses_a_buffer_of_the_right_size_and_reads_a_read_only_one() -> None:
    weights = _weights()
    first, _ = pack(weights)
    changed = [(name, tensor + 1 if tensor.is_floating_point() else tensor) for name, tensor in weights]
    second, slots = pack(changed, reuse=first)
    assert second is first  # same layout: no new allocation
    second.flags.writeable = False  # as Ray's object store hands it over
    restored = unpack(second, slots)
    assert torch.equal(restored["embed.weight"], weights[0][1] + 1)
    smaller, _ = pack(weights[:1], reuse=first)
    assert smaller is not first and smaller.nbytes < first.nbytes
