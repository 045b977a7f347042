"""``python -m bench.weight_sync``: the hf rollout's weight sync, a dict of tensors against one flat buffer.

After every training step the actor's weights cross Ray to the rollout server
(:mod:`verl_rec.cpu_backend.hf_rollout.adapter`). This sends SmolLM2-135M's 272 float32 tensors
(sizes drawn to add up to 135M parameters) to a Ray actor both ways, as the adapter did (a pickled
dict) and as it does now (:mod:`~verl_rec.cpu_backend.hf_rollout.weight_buffer`), and loads them
into the actor's own copy. Writes ``bench/results/weight_sync.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

PARAMETERS, TENSORS, REPEATS = 135_000_000, 272, 3


class _Receiver:
    """Holds a model-sized set of tensors and copies what it is sent into them."""

    def __init__(self, sizes: list[int]) -> None:
        import torch

        self.weights = {f"w{i}": torch.empty(n) for i, n in enumerate(sizes)}

    def load_dict(self, state_dict: dict) -> None:
        for name, tensor in state_dict.items():
            self.weights[name].copy_(tensor)

    def load_packed(self, buffer, slots) -> None:
        from verl_rec.cpu_backend.hf_rollout.weight_buffer import unpack

        self.load_dict(unpack(buffer, slots))


def main() -> int:
    import ray
    import torch

    from verl_rec.cpu_backend.hf_rollout.weight_buffer import pack

    sizes = [PARAMETERS // TENSORS] * TENSORS
    weights = {f"w{i}": torch.randn(n) for i, n in enumerate(sizes)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    receiver = ray.remote(_Receiver).remote(sizes)

    def as_dict() -> None:
        ray.get(receiver.load_dict.remote({name: t.detach().to("cpu", copy=True) for name, t in weights.items()}))

    buffer = None

    def as_buffer() -> None:
        nonlocal buffer
        buffer, slots = pack(weights.items(), reuse=buffer)
        ray.get(receiver.load_packed.remote(ray.put(buffer), slots))

    seconds = {}
    for name, sync in (("dict", as_dict), ("buffer", as_buffer)):
        sync()  # the first sync allocates
        started = time.perf_counter()
        for _ in range(REPEATS):
            sync()
        seconds[name] = (time.perf_counter() - started) / REPEATS
    ray.shutdown()
    ratio = seconds["dict"] / seconds["buffer"]
    print(f"{PARAMETERS / 1e6:.0f}M float32 parameters in {TENSORS} tensors, per sync: pickled dict "
          f"{seconds['dict']:.2f} s, flat buffer {seconds['buffer']:.2f} s ({ratio:.1f}x faster)")
    result = {"parameters": PARAMETERS, "tensors": TENSORS, "repeats": REPEATS, "torch_threads": torch.get_num_threads(),
              "dict_s": seconds["dict"], "buffer_s": seconds["buffer"], "dict_over_buffer": ratio}
    out = Path("bench/results/weight_sync.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
