"""``python -m bench.learn``: every run, then the report (``--report-only``: the report alone)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import bench.learn
from bench.learn.report import build_report, write_report
from bench.learn.runs import DONE_FILE, run_name, train
from bench.learn.settings import RECIPES, Settings, say


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _systems(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown system {unknown}; choose from {sorted(RECIPES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog="python -m bench.learn", description=(bench.learn.__doc__ or "").splitlines()[0])
    parser.add_argument("--work", default="data/learn", help="the model, the task, and one folder per run (runs/<system>_seed<k>)")
    parser.add_argument("--out", default="bench/results", help="where learning.json, learning.md and learning.png go")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="GRPO steps of every run")
    parser.add_argument("--val-every", type=int, default=defaults.val_every, help="greedy validation every N steps")
    parser.add_argument("--seeds", type=_ints, default=defaults.seeds, help="comma-separated (data order and rollout sampler)")
    parser.add_argument("--systems", type=_systems, default=defaults.systems, help=f"comma-separated, of {sorted(RECIPES)}")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the finished runs under --work")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.val_every < 1 or args.steps % args.val_every:
        parser.error(f"--steps ({args.steps}) must be a positive multiple of --val-every ({args.val_every})")
    settings = Settings(steps=args.steps, val_every=args.val_every, seeds=args.seeds, systems=args.systems)
    work, out = Path(args.work).resolve(), Path(args.out)
    started = time.monotonic()

    from verl_rec.quickstart_llm import check_requirements, prepare

    check_requirements()
    model, task = prepare(work / "quickstart", None)  # the quickstart's model and task, under $VERL_REC_DATA=work
    runs: dict[str, dict[int, dict]] = {}
    for system in settings.systems:
        for seed in settings.seeds:
            if args.report_only:
                done = work / "runs" / run_name(system, seed) / DONE_FILE
                if not done.is_file():
                    raise SystemExit(f"{done} is missing: run python -m bench.learn without --report-only first")
                runs.setdefault(system, {})[seed] = json.loads(done.read_text())
            else:
                runs.setdefault(system, {})[seed] = train(system, seed, model, work, settings)

    from bench.learn.scoring import load_splits

    wall = None if args.report_only else time.monotonic() - started
    command = " ".join(["python -m bench.learn", *(sys.argv[1:] if argv is None else argv)])
    report = build_report(work, runs, load_splits(task), settings, wall, command)
    write_report(report, out, work, runs)
    for system, entry in report["systems"].items():
        for seed, run in entry["seeds"].items():
            say(f"{system} {seed}: " + " | ".join(
                f"{name} raw {run[name]['raw_query_val_ndcg@10']:.3f} -> trained {run[name]['trained_val_ndcg@10']:.3f} "
                f"({run[name]['trained_minus_raw']['mean_difference']:+.3f} [{run[name]['trained_minus_raw']['ci95_low']:+.3f}, "
                f"{run[name]['trained_minus_raw']['ci95_high']:+.3f}])" for name in report["raw_query_val_ndcg@10"]))
    took = f"runs {report['runs_seconds']:.0f} s" + (f", this command {wall:.0f} s" if wall is not None else "")
    say(f"{out / 'learning.json'}, learning.md, learning.png, learning_runs/ ({took})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
