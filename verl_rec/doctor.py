"""``python -m verl_rec.doctor``: check that this machine can run verl-rec, and say what is off.

Checks, each in its own subprocess so that one JVM start cannot hide another problem:
the engines import, a Java >= 21 runtime starts with pyserini, and veRL loads our plugin
(the reward manager, the CPU platform and the ``hf`` rollout are registered).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHECKS = {
    "python packages": "import bm25s, faiss, numpy, pyarrow, torch, ray, transformers; print('torch', torch.__version__)",
    "java + pyserini": textwrap.dedent("""
        from verl_rec.retrieval.lucene.java import ensure_java
        cfg = ensure_java(heap='256m')
        from pyserini.search.lucene import LuceneSearcher  # starts the JVM
        print(f'java {cfg.version} at {cfg.java_home}')
    """),
    "veRL plugin": textwrap.dedent("""
        import verl
        from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
        print('verl', verl.__version__, '->', get_reward_manager_cls('rec_r1').__name__)
    """),
}


def main() -> int:
    failed = 0
    for name, code in CHECKS.items():
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        if proc.returncode == 0:
            print(f"[ok]   {name}: {proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ''}")
        else:
            failed += 1
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            print(f"[FAIL] {name}\n{textwrap.indent(tail, '       ')}")
    print("verl-rec doctor:", "all good" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
