"""learning.md: the tables a reader compares, from learning.json."""

from __future__ import annotations

from typing import Any


def _interval(d: dict[str, float]) -> str:
    return f"{d['mean_difference']:+.3f} [{d['ci95_low']:+.3f}, {d['ci95_high']:+.3f}]"


def _cell(text: str | None) -> str:
    return "(malformed)" if text is None else text.replace("|", "/").replace("\n", " ")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def heldout_table(report: dict[str, Any]) -> list[str]:
    raw, terse = report["raw_query_val_ndcg@10"], report["collection_query_val_ndcg@10"]
    lines = [f"| held-out NDCG@10 ({report['val_queries']} queries) | phrasing | untrained | trained | "
             "trained - raw, 95% CI | wins / losses / ties | gap closed | format ok, untrained -> trained | "
             "searches per episode | seconds |",
             "|---|---|---:|---:|---|---|---:|---|---:|---:|"]
    for name in raw:
        lines.append(f"| raw request (BM25 on what the user wrote) | {name} | - | {raw[name]:.3f} | - | - | - | - | - | - |")
        lines.append(f"| the collection's terse query (reference) | {name} | - | {terse[name]:.3f} | - | - | 100% | - | - | - |")
    for system, entry in report["systems"].items():
        for seed, run in entry["seeds"].items():
            for name in raw:
                r = run[name]
                d = r["trained_minus_raw"]
                lines.append(
                    f"| {system}, {seed} | {name} | {r['untrained_val_ndcg@10']:.3f} | {r['trained_val_ndcg@10']:.3f} | "
                    f"{_interval(d)} | {d['wins']} / {d['losses']} / {d['ties']} | {_pct(r['gap_closed'])} | "
                    f"{r['untrained_format_ok']:.2f} -> {r['trained_format_ok']:.2f} | {r['trained_search_calls']:.2f} | "
                    f"{run['seconds']:.0f} |")
    return lines


def seeds_table(report: dict[str, Any]) -> list[str]:
    lines = ["| trained NDCG@10 across seeds | phrasing | mean | min | max | stdev |", "|---|---|---:|---:|---:|---:|"]
    for system, entry in report["systems"].items():
        for name, s in entry["between_seeds"].items():
            lines.append(f"| {system} | {name} | {s['mean']:.3f} | {s['min']:.3f} | {s['max']:.3f} | {s['stdev']:.3f} |")
    return lines


def comparison_table(report: dict[str, Any]) -> list[str]:
    if not report["agent_minus_rewrite"]:
        return []
    lines = ["| agent - rewrite, trained, NDCG@10 | phrasing | mean, 95% CI | wins / losses / ties |", "|---|---|---|---|"]
    for seed, by_split in report["agent_minus_rewrite"].items():
        for name, d in by_split.items():
            lines.append(f"| {seed} | {name} | {_interval(d)} | {d['wins']} / {d['losses']} / {d['ties']} |")
    return lines


def stages_table(report: dict[str, Any]) -> list[str]:
    names = sorted({k for e in report["systems"].values() for r in e["seeds"].values() for k in r["stage_seconds_per_step"]},
                   key=lambda k: (k == "step", k))
    lines = ["| seconds per step | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for system, entry in report["systems"].items():
        for seed, run in entry["seeds"].items():
            s = run["stage_seconds_per_step"]
            lines.append(f"| {system}, {seed} | " + " | ".join(f"{s[n]:.1f}" if n in s else "-" for n in names) + " |")
    return lines


def _first_seed(report: dict[str, Any], system: str) -> dict[str, Any] | None:
    """The first seed's run of ``system`` (its examples stand for the system's), if it ran."""
    seeds = report["systems"].get(system, {}).get("seeds", {})
    return next(iter(seeds.values()), None)


def examples_table(report: dict[str, Any]) -> list[str]:
    run = _first_seed(report, "rewrite")
    if run is None:
        return []
    lines = ["| unseen request | raw | untrained query (NDCG@10) | trained query (NDCG@10) |", "|---|---:|---|---|"]
    for e in run["examples_unseen"]:
        lines.append(f"| {_cell(e['request'])} | {e['raw_ndcg@10']:.2f} | {_cell(e['untrained_query'])} "
                     f"({e['untrained_ndcg@10']:.2f}) | {_cell(e['trained_query'])} ({e['trained_ndcg@10']:.2f}) |")
    return lines


def episodes_table(report: dict[str, Any]) -> list[str]:
    run = _first_seed(report, "agent")
    if run is None:
        return []
    lines = ["| unseen request | trained agent's searches | final query | NDCG@10 |", "|---|---|---|---:|"]
    for e in run["episodes_unseen"]:
        searches = " ; ".join(_cell(q) for q in e["searches"]) or "(none)"
        lines.append(f"| {_cell(e['request'])} | {searches} | {_cell(e['answer'])} | {e['ndcg@10']:.2f} |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    blocks = [heldout_table(report), seeds_table(report), comparison_table(report), stages_table(report),
              examples_table(report), episodes_table(report)]
    return "\n\n".join("\n".join(b) for b in blocks if b) + "\n"
