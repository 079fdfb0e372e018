"""How the runs of `ctxdata synth traces` compare in structure with real agent runs, by outcome.

Per set and per outcome (resolved / not resolved) it prints quantiles of: assistant steps, file
size, failing commands (non-zero exit codes) per run, the share of commands that fail, the share of
runs with at least one failure, replies without an exit code (format errors, the submission), the
text of the steps in KB, and the mean thought length. The peer is a folder of real runs read the same way (default: the 415
mini-swe-agent runs in ../shared/data/traces-dev, skipped when absent). A generator is "real
enough" for the audit when its resolved and unresolved runs look alike, as the real ones do.

    python benchmarks/synth_realism.py --synth OUT [--real ../shared/data/traces-dev]
    python benchmarks/synth_realism.py --make 600      # writes a set with the default settings first
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces-dev"


def run_rows(folder: Path) -> list[dict]:
    from ctxdata.coding.readers import discover_trace_files, iter_records

    rows = []
    for path in discover_trace_files(folder):
        for rec in iter_records(path):
            t = rec.trajectory
            if t is None:
                continue
            codes = [s.returncode for s in t.steps if s.returncode is not None]
            rows.append({
                "resolved": t.outcome.resolved,
                "steps": len(t.steps),
                "file_kb": path.stat().st_size / 1024,  # real files also carry each reply's raw API response
                "text_kb": sum(len(s.thought) + len(s.action) + len(s.observation) for s in t.steps) / 1024,
                "failing": sum(c != 0 for c in codes),
                "fail_share": sum(c != 0 for c in codes) / max(1, len(codes)),
                "no_exit": len(t.steps) - len(codes),
                "thought": statistics.mean(len(s.thought) for s in t.steps) if t.steps else 0.0,
            })
    return rows


def quantiles(values: list[float]) -> str:
    v = sorted(values)
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))]  # noqa: E731
    return f"{pick(0.1):7.1f} {pick(0.5):7.1f} {pick(0.9):7.1f}"


def report(name: str, rows: list[dict]) -> None:
    print(f"\n{name}: {len(rows)} runs   (columns: q10 median q90)")
    for resolved in (True, False):
        part = [r for r in rows if r["resolved"] is resolved]
        if not part:
            continue
        print(f"  resolved={resolved} ({len(part)} runs)")
        for key in ("steps", "file_kb", "text_kb", "failing", "no_exit", "thought"):
            print(f"    {key:<10} {quantiles([r[key] for r in part])}")
        share = statistics.mean(r["fail_share"] for r in part)
        any_fail = statistics.mean(r["failing"] > 0 for r in part)
        print(f"    failing commands {share:.3f} of all; runs with a failure {any_fail:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synth", type=Path, help="a folder written by `ctxdata synth traces`")
    ap.add_argument("--make", type=int, default=0, help="write a synthetic set of this many tasks (default settings)")
    ap.add_argument("--real", type=Path, default=REAL, help="real runs to compare with")
    args = ap.parse_args()
    if args.real.exists():
        report(f"real: {args.real}", run_rows(args.real))
    else:
        print(f"(no real runs at {args.real}: skipped)")
    if args.make:
        from ctxdata.coding.synth import SynthConfig, write_traces

        args.synth = Path(tempfile.mkdtemp(prefix="synth-realism-"))
        write_traces(SynthConfig(n=args.make), args.synth)
    if args.synth:
        report(f"synthetic: {args.synth}", run_rows(args.synth))


if __name__ == "__main__":
    main()
