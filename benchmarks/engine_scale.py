"""`build-coding` on the local engine (1 and 2 workers) and on Ray (a local cluster of 1 and 2 CPUs).

Everything is measured in one run, each build in a fresh subprocess on the same synthetic set
(`ctxdata synth traces`, ~20 KB per trajectory):

- wall time of the build, trajectories/s, speed-up over local with 1 worker, scaling efficiency
  (speed-up / workers);
- Ray's fixed start-up cost, apart: `ray.init` of the local cluster, then the first task that
  starts the worker processes (later phases reuse them). The Ray build time excludes both;
- whether every run wrote the same shards (sha256 of each shard, from state.json);
- the context-store question: per pair task, how many phase-1 store files it reads from and how
  many bytes it needs, against what shipping whole store files through Ray's object store would
  move.

Target (issue #12): Ray with 2 CPUs >= 0.8x the throughput of local with 2 workers at 10k.

    python benchmarks/engine_scale.py --n 10000 --work /tmp/ctxdata-engine-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYNTH_KB = 20  # mean KB per synthetic trajectory (the synth default is 60, like real runs; 20 keeps 10k in minutes)

BUILD = r"""
import json, sys, time
traces, out, engine, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
init_s = warmup_s = 0.0
if engine == "ray":
    from ctxdata.engine import EngineOptions, make_engine
    cluster = make_engine(EngineOptions(engine="ray", workers=workers))  # the local cluster a build would start
    t = time.perf_counter()
    cluster.start()
    init_s = time.perf_counter() - t
    t = time.perf_counter()
    list(cluster.map(len, [[0]] * workers))  # starts the worker processes, which the build then reuses
    warmup_s = time.perf_counter() - t
from ctxdata.coding.build import CodingBuildConfig, build_coding
t = time.perf_counter()
config = CodingBuildConfig(traces=[traces + "/trajs"], results=traces + "/logs", out=out, workers=workers,
                           engine=engine, audit="off",  # the audit runs on the driver alike on every engine
                           max_pairs_per_trajectory=1, max_shortcut=None)  # the engines, not MiniLM (shortcut_frontier.py)
report = build_coding(config)
build_s = time.perf_counter() - t
state = json.load(open(out + "/state.json"))
print(json.dumps({"build_s": build_s, "init_s": init_s, "warmup_s": warmup_s, "pairs": report["pairs"],
                  "read": report["trajectories_read"], "shards": [f["sha256"] for f in state["_data_files"]]}))
"""

STORE = r"""
import json, sys
from pathlib import Path
from ctxdata.coding.build import CodingBuildConfig, collect_signatures
from ctxdata.coding.cascade import mine_candidates
from ctxdata.engine.local import LocalEngine
from ctxdata.pipeline import RunContext
traces, store, workers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
config = CodingBuildConfig(traces=[traces + "/trajs"], results=traces + "/logs", out=str(store.parent / "unused"),
                           workers=workers)
with LocalEngine(workers) as engine:
    sigs = collect_signatures(config, RunContext(), store, engine=engine)
cands = mine_candidates(sigs, config.cascade)
sizes = {p.name: p.stat().st_size for p in store.glob("slice-*.bin")}
tasks = [cands[i : i + config.shard_size] for i in range(0, len(cands), config.shard_size)]
files = [{r[0] for c in task for r in (c.anchor_context, c.confounder_context)} for task in tasks]
needed = sum(r[2] for c in cands for r in (c.anchor_context, c.confounder_context))
print(json.dumps({"store_mb": sum(sizes.values()) / 2**20, "store_files": len(sizes), "tasks": len(tasks),
                  "files_per_task": sum(map(len, files)) / max(1, len(files)),
                  "needed_mb": needed / 2**20, "whole_files_mb": sum(sizes[f] for fs in files for f in fs) / 2**20}))
"""


def run_json(code: str, *args: str) -> dict:
    env = {**os.environ, "CTXDATA_PROGRESS": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="synthetic trajectories")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ctxdata-engine-bench"))
    args = parser.parse_args()
    traces = args.work / f"traces-{args.n}"
    if not (traces / "trajs").is_dir():
        cmd = ["synth", "traces", "--n", str(args.n), "--kb", str(SYNTH_KB), "--out", str(traces)]
        subprocess.run(
            [sys.executable, "-m", "ctxdata", *cmd],
            check=True,
            env={**os.environ, "CTXDATA_PROGRESS": "0", "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
        )
    cores, load = os.cpu_count(), os.getloadavg()[0]
    print(f"build-coding on {args.n} synthetic trajectories; {cores} CPU cores; load average {load:.1f}")
    runs = []
    for engine, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
        out = args.work / f"out-{engine}-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        result = run_json(BUILD, str(traces), str(out), engine, str(workers))
        result.update(engine=engine, workers=workers, process_s=time.perf_counter() - t, load=os.getloadavg()[0])
        runs.append(result)
        print(
            f"  {engine} x{workers}: build {result['build_s']:.1f} s (start-up apart: init {result['init_s']:.1f} s, "
            f"workers {result['warmup_s']:.1f} s); load average after it {result['load']:.1f}",
            flush=True,
        )
    base = runs[0]["build_s"]
    print(
        "\n| engine | workers/CPUs | build s | trajectories/s | speed-up vs local x1 | efficiency | fixed start-up s |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        speedup = base / r["build_s"]
        cells = [
            r["engine"],
            r["workers"],
            f"{r['build_s']:.1f}",
            f"{r['read'] / r['build_s']:.0f}",
            f"{speedup:.2f}",
            f"{speedup / r['workers']:.2f}",
            f"{r['init_s'] + r['warmup_s']:.1f}",
        ]
        print("| " + " | ".join(map(str, cells)) + " |")
    local2, ray2 = runs[1], runs[3]
    ratio = local2["build_s"] / ray2["build_s"]
    with_startup = local2["build_s"] / (ray2["build_s"] + ray2["init_s"] + ray2["warmup_s"])
    print(
        f"\nray x2 throughput / local x2 throughput: {ratio:.2f} (target >= 0.8); "
        f"with Ray's start-up included: {with_startup:.2f}"
    )
    same = all(r["shards"] == runs[0]["shards"] for r in runs)
    print(f"same shards (sha256) in all four runs: {same}; pairs {runs[0]['pairs']}")
    store = run_json(STORE, str(traces), str(args.work / "store" / "contexts"), "2")
    shutil.rmtree(args.work / "store", ignore_errors=True)
    print(
        f"context store: {store['store_mb']:.0f} MB in {store['store_files']} files; {store['tasks']} pair tasks read "
        f"{store['files_per_task']:.1f} files each; they need {store['needed_mb']:.0f} MB of contexts, shipping whole "
        f"store files per task would move {store['whole_files_mb']:.0f} MB "
        f"({store['whole_files_mb'] / max(store['needed_mb'], 1e-9):.1f}x)"
    )


if __name__ == "__main__":
    main()
