"""``python -m bench.learn``: every stage, then the report (``--report-only``: the report alone)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import bench.learn
from bench.learn.report import archive_run, build_report, markdown, plot
from bench.learn.settings import VASWANI, Settings, say
from bench.learn.training import train_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learn", description=(bench.learn.__doc__ or "").splitlines()[0])
    parser.add_argument("--work", default="data/learn", help="models, data and trainer runs")
    parser.add_argument("--out", default="bench/results", help="where learning.json and learning.png go")
    parser.add_argument("--vaswani", default=str(VASWANI), help="the Vaswani collection (TREC files)")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild learning.json and the plot from the runs under --work, training nothing")
    defaults = Settings()
    for name, value in asdict(defaults).items():
        if isinstance(value, bool):
            parser.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    settings = Settings(**{k: getattr(args, k) for k in asdict(defaults)})
    work, out = Path(args.work).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = work / "learn_state.json"
    if args.report_only:
        if not state_path.is_file():
            raise SystemExit(f"{state_path} is missing: run python -m bench.learn without --report-only first")
        state = json.loads(state_path.read_text())
    else:
        if not (Path(args.vaswani) / "qrels").is_file():
            raise SystemExit(f"--vaswani {args.vaswani}: no qrels file there (the collection's TREC files)")
        state = train_all(work, settings, Path(args.vaswani))
        state_path.write_text(json.dumps(state, indent=2) + "\n")
    report = build_report(work, settings, state)
    (out / "learning.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "learning.png")
    (out / "learning.md").write_text(markdown(report))
    archive_run(work, out / "learning_run")
    say(f"held-out NDCG@10: raw request {report['raw_query_val_ndcg@10']:.4f} | warmed-up "
        f"{report['warmed_up_val_ndcg@10']:.4f} | trained {report['trained_val_ndcg@10']:.4f} "
        f"(step {report['trained_at_step']}); {out / 'learning.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
