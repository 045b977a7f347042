"""``python -m verl_rec.preflight --recipe <name> --gpus N [--nodes M] [overrides...]``: would this recipe start on GPUs?"""

from __future__ import annotations

import argparse
import sys

from verl_rec.preflight.checks import run_preflight


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verl_rec.preflight",
                                     description="Replay veRL 0.9.1's worker-time checks for a recipe at a cluster size.")
    parser.add_argument("--recipe", required=True, help="a recipe name (python -m verl_rec.recipes prints their folder)")
    parser.add_argument("--gpus", type=int, required=True, help="GPUs per node")
    parser.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as main_ppo takes them (key=value, +key=value)")
    args = parser.parse_args(argv)
    if args.gpus < 1 or args.nodes < 1:
        parser.error("--gpus and --nodes must be >= 1")
    try:
        report = run_preflight(args.recipe, args.gpus, args.nodes, args.overrides)
    except KeyError as exc:
        print(f"preflight: {exc.args[0]}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
