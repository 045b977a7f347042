"""``python -m bench.cpu_dtype``: float32 against bfloat16 matrix products on this CPU.

veRL computes in bfloat16 by default (FSDP mixed precision, the rollout's ``dtype``). On a CPU
without AVX512-BF16 or AMX, torch multiplies bf16 matrices far slower than float32, which is
why :func:`verl_rec.cpu_backend.overrides.cpu_overrides` sets float32. The shapes are
SmolLM2-135M's (hidden 576, MLP 1536, vocab 49,152) over 256 tokens. Writes
``bench/results/cpu_dtype.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

SHAPES = {"attention/MLP (576 x 1536)": (576, 1536), "lm head (576 x 49152)": (576, 49152)}


def seconds(tokens: int, k: int, n: int, dtype, repeats: int) -> float:
    import torch

    a, b = torch.randn(tokens, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return (time.perf_counter() - started) / repeats


def main() -> int:
    import torch

    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").is_file() else []
    rows = []
    for name, (k, n) in SHAPES.items():
        fp32 = seconds(256, k, n, torch.float32, 5)
        bf16 = seconds(256, k, n, torch.bfloat16, 1)
        rows.append({"matmul": name, "float32_s": fp32, "bfloat16_s": bf16, "bfloat16_over_float32": bf16 / fp32})
        print(f"{name}: float32 {fp32 * 1e3:.1f} ms, bfloat16 {bf16 * 1e3:.1f} ms ({bf16 / fp32:.0f}x slower)")
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu_flags": {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}, "rows": rows}
    out = Path("bench/results/cpu_dtype.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
