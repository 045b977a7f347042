"""The benchmark's report (``bench/report.py``) from the committed results alone, no benchmark run.

``python -m bench.run --replot <results.json>`` rewrites the table and targets of a run: from
the committed headline results it must give the committed ``reward_throughput.txt`` byte for
byte, so the report shown in the repository is the one its numbers give.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

RESULTS = REPO_ROOT / "bench" / "results"


def test_replot_of_the_committed_results_gives_the_committed_report(tmp_path, capsys):
    from bench import run as bench

    for run in (RESULTS, RESULTS / "repeat_759fcf1"):
        out = tmp_path / run.name
        out.mkdir()
        shutil.copy(run / "reward_throughput.json", out)
        assert bench.main(["--replot", str(out / "reward_throughput.json")]) == {}
        assert (out / "reward_throughput.txt").read_bytes() == (run / "reward_throughput.txt").read_bytes(), run
        assert (out / "reward_throughput.png").stat().st_size > 5_000
        printed = capsys.readouterr().out
        assert printed == (run / "reward_throughput.txt").read_text()  # the same text on the console
