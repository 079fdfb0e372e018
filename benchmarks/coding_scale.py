"""How `build-coding` scales: trajectories/s, peak RSS, and the ratio to a plain json.loads.

For each size N (default 1k, 10k, 50k) it makes a realistic synthetic set with
`ctxdata synth traces` (~20 KB per trajectory, sibling groups sharing repo/commit/file/function),
then, each in a fresh subprocess so peak RSS is the run's own:

- the peer: `json.loads` of every trajectory file (and nothing else);
- ctxdata: the whole `build-coding` pipeline (read, sign, render + store, cascade, mask, verify, write);
- for the breakdown, phase 1 alone (read + sign + render and store every trajectory, same workers);
- CPU time per trajectory of both (all processes), which is steadier than wall time on a shared machine.

Targets (issue #2): time grows at most ~1.2x per 10x of input beyond linear; peak RSS at 50k
under 1.5 GiB and growing far slower than the input; throughput >= 0.5x the plain parse.

    python benchmarks/coding_scale.py --sizes 1000,10000,50000 --work /tmp/ctxdata-bench
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

PARSE = r"""
import json, os, resource, sys, time
from ctxdata.coding.readers import discover_trace_files
files = discover_trace_files(sys.argv[1])
t, c = time.perf_counter(), time.process_time()
for f in files:
    with open(f, "rb") as fh:
        json.loads(fh.read())
dt, cpu = time.perf_counter() - t, time.process_time() - c
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": dt, "files": len(files), "rss_mb": ru.ru_maxrss / 1024, "cpu_s": cpu, "disk_read_mb": ru.ru_inblock * 512 / 2**20}))
"""

BUILD = r"""
import json, resource, sys, time
from ctxdata.coding.build import CodingBuildConfig, build_coding
t = time.perf_counter()
# The pipeline's own cost, as measured before the MiniLM shortcut filter became the default: that
# filter's cost (~1 s of CPU per candidate context) is benchmarks/shortcut_frontier.py's.
report = build_coding(CodingBuildConfig(traces=[sys.argv[1]], out=sys.argv[2], overwrite=True, workers=int(sys.argv[3]),
                                        max_pairs_per_trajectory=1, max_shortcut=None))
from ctxdata.parallel import resolve_workers
report["workers"] = resolve_workers(int(sys.argv[3]))
dt = time.perf_counter() - t
# Peak RSS of this process and of the largest worker it spawned (workers run side by side).
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
rss = me.ru_maxrss + kids.ru_maxrss * report.get("workers", 1)
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime  # all processes: the work, whatever the parallelism
disk = (me.ru_inblock + kids.ru_inblock) * 512 / 2**20  # reads that missed the page cache
print(json.dumps({"seconds": dt, "pairs": report["pairs"], "inputs": report["inputs"], "levels": report["levels"], "rss_mb": rss / 1024, "cpu_s": cpu, "disk_read_mb": disk}))
"""


SIGN = r"""
import json, sys, time
from pathlib import Path
from ctxdata.coding.build import CodingBuildConfig, collect_signatures
from ctxdata.engine.local import LocalEngine
from ctxdata.pipeline import RunContext
config = CodingBuildConfig(traces=[sys.argv[1]], out=sys.argv[2], workers=int(sys.argv[3]))
t = time.perf_counter()
with LocalEngine(config.workers) as engine:
    sigs = collect_signatures(config, RunContext(), Path(sys.argv[2]) / "contexts", engine=engine)
print(json.dumps({"seconds": time.perf_counter() - t, "signed": len(sigs)}))
"""


def run_json(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env={"CTXDATA_PROGRESS": "0", **_env()})
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _env() -> dict:
    import os

    return dict(os.environ)


def warm(traces: Path) -> Path:
    """Read every file once so the next run finds it in the page cache."""
    for f in traces.rglob("*"):
        if f.is_file():
            f.read_bytes()
    return traces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--kb", type=float, default=20.0)
    ap.add_argument("--work", default="/tmp/ctxdata-bench-coding")
    ap.add_argument("--workers", type=int, default=0, help="build-coding --workers (0 = one per core)")
    ap.add_argument("--keep", action="store_true", help="keep the generated trajectories")
    args = ap.parse_args()
    work = Path(args.work)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        traces, out = work / f"traces-{n}", work / f"out-{n}"
        if not (traces / ".done").exists():
            shutil.rmtree(traces, ignore_errors=True)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ctxdata", "synth", "traces", "--n", str(n), "--kb", str(args.kb), "--out", str(traces)],
                           check=True, capture_output=True, env={"CTXDATA_PROGRESS": "0", **_env()})
            (traces / ".done").write_text(f"{time.perf_counter() - t:.1f}")
        size_mb = sum(p.stat().st_size for p in (traces / "trajs").rglob("*.json")) / 2**20
        # Warm the page cache (trajectories and their logs/ sidecars) right before every run, so
        # no side pays disk reads: this machine pages cold memory out proactively (DAMON), page
        # cache included. `disk_read_mb` says how much each run still read from the disk.
        parse = run_json(PARSE, str(warm(traces)))
        shutil.rmtree(out, ignore_errors=True)  # a kept output would resume and skip phase 2
        build = run_json(BUILD, str(warm(traces)), str(out), str(args.workers))
        sign = run_json(SIGN, str(warm(traces)), str(out), str(args.workers))
        rows.append({"n": n, "mb": round(size_mb, 1), "parse_s": round(parse["seconds"], 2), "parse_per_s": round(n / parse["seconds"]),
                     "build_s": round(build["seconds"], 2), "build_per_s": round(n / build["seconds"]),
                     "ratio_to_parse": round(parse["seconds"] / build["seconds"], 3),
                     "parse_cpu_ms": round(parse["cpu_s"] / n * 1e3, 3), "build_cpu_ms": round(build["cpu_s"] / n * 1e3, 3),
                     "sign_per_s": round(n / sign["seconds"]), "sign_ratio_to_parse": round(parse["seconds"] / sign["seconds"], 3), "peak_rss_mb": round(build["rss_mb"]),
                     "parse_rss_mb": round(parse["rss_mb"]),
                     "disk_read_mb": {"parse": round(parse["disk_read_mb"]), "build": round(build["disk_read_mb"])}, "pairs": build["pairs"], "levels": build["levels"]})
        print(json.dumps(rows[-1]), flush=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    print("\n| N | input MB | json.loads traj/s | build-coding traj/s | ratio (target >= 0.5) | phase 1 traj/s | its ratio | CPU ms/traj json.loads / build | peak RSS MB (target < 1536 at 50k) | pairs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['mb']} | {r['parse_per_s']} | {r['build_per_s']} | {r['ratio_to_parse']} | {r['sign_per_s']} | {r['sign_ratio_to_parse']} | {r['parse_cpu_ms']} / {r['build_cpu_ms']} | {r['peak_rss_mb']} | {r['pairs']} |")
    for a, b in zip(rows, rows[1:]):
        growth = (b["build_s"] / a["build_s"]) / (b["n"] / a["n"])
        print(f"time per trajectory {a['n']} -> {b['n']}: x{growth:.2f} (target <= ~1.2 per 10x); RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f} for x{b['n'] // a['n']} input")


if __name__ == "__main__":
    main()
