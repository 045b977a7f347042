"""``python -m bench.quickstart``: the real-LLM quickstart from a clean data folder, measured.

Runs ``python -m verl_rec.quickstart`` exactly as a user would (a new, empty
``$VERL_REC_DATA``: the model converted, the bundled collection built and indexed, GRPO, the
held-out comparison), and records what it printed, its wall time and the machine's load before
and after (the machine may be shared: a loaded machine makes every stage slower). Writes
``bench/results/quickstart.json``, ``quickstart.txt`` (the console) and ``quickstart.png`` (the
curve). Not a test: it takes about ten minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quickstart", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", default="bench/results", help="where quickstart.json, .txt and .png go")
    parser.add_argument("--keep", default=None, help="run in this folder (kept) instead of a fresh temporary one")
    args, extra = parser.parse_known_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.keep or tempfile.mkdtemp(prefix="verl_rec_quickstart_"))
    if data.is_dir() and any(data.iterdir()):
        raise SystemExit(f"--keep {data}: not empty; the measurement starts from a clean data folder")
    data.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, VERL_REC_DATA=str(data))
    load_start, started = os.getloadavg(), time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "verl_rec.quickstart", *extra], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wall, load_end = time.monotonic() - started, os.getloadavg()
    console = proc.stdout
    (out / "quickstart.txt").write_text(console, encoding="utf-8")
    lines = [line for line in console.splitlines() if line.startswith("[quickstart] held-out NDCG@10")]
    record = {"command": " ".join(["python -m verl_rec.quickstart", *extra]), "exit_code": proc.returncode,
              "final_line": lines[-1] if lines else None, "wall_seconds": wall, "cpu_count": os.cpu_count(),
              "load_average_start": load_start, "load_average_end": load_end}
    results = data / "quickstart" / "quickstart.json"
    if results.is_file():
        summary = json.loads(results.read_text())
        record.update({k: summary[k] for k in ("seconds", "first_validation_step", "last_validation_step")})
        record["step_seconds"] = {s: m.get("timing_s/step") for s, m in summary["steps"].items() if "timing_s/step" in m}
        shutil.copy(data / "quickstart" / "quickstart.png", out / "quickstart.png")
    (out / "quickstart.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(console[-3000:])
    print(f"[bench.quickstart] {wall:.0f} s, exit {proc.returncode}; {out / 'quickstart.json'}")
    if args.keep is None:
        shutil.rmtree(data, ignore_errors=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
