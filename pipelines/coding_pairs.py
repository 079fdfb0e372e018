"""Coding pairs in plain Python: the same stages `ctxdata build-coding` runs, as lists.

    python pipelines/coding_pairs.py TRACES_DIR OUT_DIR

Phase 1 reads every trajectory once, keeps only a signature in memory and stores the rendered
context on disk; the cascade mines candidate pairs from the signatures. Between the phases the
shortcut filter is calibrated on the candidates (MiniLM included; skipped under 50 candidates).
Phase 2 works task by task (one shard each, resumable): read the two stored contexts, mask both
patches in both, verify, and drop what a calibrated cheap predictor is surer than 0.85 of.
"""

import shutil
import sys
from pathlib import Path

from ctxdata.coding.build import MaskContexts
from ctxdata.coding.cascade import CascadeConfig, DropDuplicateRuns, SignTrajectories, mine_candidates
from ctxdata.coding.readers import ReadTrajectories
from ctxdata.coding.store import ContextWriter, LoadContexts, StoreContexts
from ctxdata.io import PairOutput
from ctxdata.engine import run_tasks
from ctxdata.pipeline import RunContext, run_stages
from ctxdata.verify.checks import VerifyPairs
from ctxdata.coding.checks import NoShortcut, coding_checks
from ctxdata.coding.shortcut import MIN_CALIBRATION_PAIRS, calibrate_in_rounds, calibration_sample, shortcut_predictor_names

traces, out = Path(sys.argv[1]), Path(sys.argv[2])
cascade = CascadeConfig(levels=("repo", "commit", "file", "function", "issue", "instance"), seed=0, max_pairs_per_trajectory=2)
max_shortcut = 0.85  # the most a calibrated cheap predictor may put on one context

output = PairOutput(out, {"traces": str(traces), "pipeline": "pipelines/coding_pairs.py", "seed": cascade.seed}, command="coding_pairs")
store = output.work / "contexts"

# Phase 1: files -> trajectories -> signatures (contexts rendered to the store) -> candidates.
writer = ContextWriter(store, "all.bin")
signature_stages = [
    ReadTrajectories(),  # every record, parsed once
    SignTrajectories(keep_trajectory=True),  # repo, commit, files, functions, issue MinHash
    StoreContexts(writer, max_context_tokens=4096),  # diff blocks masked, rendered, written to disk
    DropDuplicateRuns(),  # a run read twice; different runs of one task all stay
]
ctx = RunContext()
signatures = list(run_stages(signature_stages, [traces], ctx))
writer.close()
candidates = mine_candidates(signatures, cascade, ctx)

# The shortcut filter: calibrated on the candidates, masked as phase 2 masks them, in rounds.
shortcut = None
if len(candidates) >= MIN_CALIBRATION_PAIRS:  # fewer: too few to calibrate on, nothing is dropped
    sample = run_stages([LoadContexts(store), MaskContexts("words")], calibration_sample(candidates, cascade.seed), RunContext())
    shortcut = NoShortcut(calibrate_in_rounds(list(sample), shortcut_predictor_names("full"), max_shortcut), max_shortcut)

# Phase 2: candidates -> verified pairs, 256 per shard.
pair_stages = [
    LoadContexts(store),  # the two stored contexts, one seek and read each
    MaskContexts("words"),  # mask both patches, both issues (their distinctive words) and both ids in both; place A/B by the label
    VerifyPairs(coding_checks(max_length_ratio=2.0, shortcut=shortcut)),  # differ, no leak, length band, no id shortcut, no cheap cue
]
output.write_input_rejects(ctx.rejects)
tasks = [candidates[i : i + 256] for i in range(0, len(candidates), 256)]
run_tasks(output, tasks, pair_stages)
shutil.rmtree(store)  # the rendered contexts are in the shards now
report = output.finalize(len(tasks), inputs=ctx.counters.pop("inputs", 0), global_ctx=ctx)
print(f"{report['pairs']} pairs from {report['inputs']} trajectories -> {out}  by method: {report['methods']}")
