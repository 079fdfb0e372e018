"""Yield against the best shortcut on real runs: `build-coding` at several `--max-pairs-per-trajectory`
and `--max-shortcut P` settings, all with `--shortcut-predictors full --audit full`.

Every build runs in this one process, so the MiniLM best-chunk scores of a masked context (the
whole cost: ~99% of a build here) are computed by the first build and reused by the rest
(`ctxdata.audit.predictors` remembers them per process). The pairs, and so the figures, are the
ones `ctxdata build-coding --traces TRACES --out OUT --audit full FLAGS` writes on its own: the
builds are deterministic and the memo only skips recomputing a score.

Per build it prints: pairs, pairs per trajectory, MiniLM's accuracy, the best cheap predictor that
is not answer-evidence (fixed direction, with its Wilson 95% interval), the strongest read either
way, and the best answer-evidence predictor.

    python benchmarks/shortcut_frontier.py --traces ../shared/data/traces-dev --work /tmp/frontier
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# (max pairs per trajectory, P); P None = no filter. The first build scores every candidate of the
# largest candidate set (P=1.0 filters nothing), so every later build finds its scores.
SETTINGS = [(20, 1.0), (20, 0.85), (20, 0.8), (20, 0.75), (8, 0.85), (8, 0.8), (3, 0.85), (3, 0.8),
            (2, 0.85), (2, 0.9), (1, None), (1, 0.85), (1, 0.8)]  # (2, 0.85): the build defaults


def summary(report: dict, trajectories: int) -> dict:
    audit = report["audit"]["domains"]["coding"]
    predictors = {p["name"]: p for p in audit["predictors"]}
    cheap = [p for p in audit["predictors"] if p["family"] != "answer-evidence"]
    best = max(cheap, key=lambda p: p["accuracy"])
    either = max(cheap, key=lambda p: p["either_way"])
    answer = max((p for p in audit["predictors"] if p["family"] == "answer-evidence"), key=lambda p: p["accuracy"])
    return {"pairs": report["pairs"], "per_trajectory": round(report["pairs"] / trajectories, 3),
            "candidates": report["candidates"], "minilm": predictors["query-minilm-chunk"]["accuracy"],
            "best": [best["name"], best["accuracy"], best["ci"]], "either_way": [either["name"], either["either_way"]],
            "answer": answer["accuracy"]}


def main() -> None:
    from ctxdata.coding.build import CodingBuildConfig, build_coding

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ctxdata-frontier"))
    args = parser.parse_args()
    print("| --max-pairs-per-trajectory | --max-shortcut | pairs | per trajectory | MiniLM | best cheap (not answer) "
          "| strongest either way | answer | build s |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    records = []
    for per_trajectory, p in SETTINGS:
        filtering = {"max_shortcut": p, "shortcut_predictors": "full"} if p else {"max_shortcut": None}
        start = time.perf_counter()
        report = build_coding(CodingBuildConfig(
            traces=[args.traces], out=str(args.work / f"mp{per_trajectory}-p{p}"), overwrite=True,
            max_pairs_per_trajectory=per_trajectory, audit="full", **filtering))
        row = {"max_pairs_per_trajectory": per_trajectory, "max_shortcut": p, "build_s": round(time.perf_counter() - start),
               **summary(report, report["trajectories_read"])}
        records.append(row)
        best, either = row["best"], row["either_way"]
        print(f"| {per_trajectory} | {p or 'off'} | {row['pairs']} | {row['per_trajectory']:.3f} | {row['minilm']:.2f} "
              f"| {best[1]:.2f} [{best[2][0]:.2f}, {best[2][1]:.2f}] `{best[0]}` | {either[1]:.2f} `{either[0]}` "
              f"| {row['answer']:.2f} | {row['build_s']} |", flush=True)
    (args.work / "frontier.json").write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
