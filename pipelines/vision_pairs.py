"""Vision pairs in plain Python: the same stages `ctxdata build-vision` runs, spelled out.

    python pipelines/vision_pairs.py [OUT_DIR] [POOL]        # no POOL: the built-in demo pool

Global phase: pool -> embeddings -> index -> candidates (neighbours + edits) -> seeded roles and labels.
Per-task phase: run_tasks pushes each chunk of candidates through the stage list and writes one
resumable shard per chunk (rerun after a kill: finished shards are skipped).
"""

from __future__ import annotations

import sys

from ctxdata.io import PairOutput
from ctxdata.engine import run_tasks
from ctxdata.pipeline import RunContext
from ctxdata.vision.build import (VisionConfig, assign_labels, assign_roles, chunk, embed_pool, load_any_pool,
                                  mine_retrieval, plan_edits, pool_index)
from ctxdata.vision.edit import EditorChoice
from ctxdata.vision.embed import make_embedder
from ctxdata.vision.stages import BuildState, vision_stages

out = sys.argv[1] if len(sys.argv) > 1 else "pairs/vision-demo"
config = VisionConfig(pool=sys.argv[2] if len(sys.argv) > 2 else None, sim_band=(0.9, 1.0), seed=0)
output = PairOutput(out, config.to_dict(), command="build-vision")  # refuses a folder holding another config
ctx = RunContext()  # counts the global phase: pool rejects, candidates per strategy

# 1. Pool: every qa row is an input; unreadable rows become rejects with a reason.
pool = load_any_pool(config, ctx)

# 2. Embed every pool image once (L2-normalised), index them for kNN search.
embedder = make_embedder(config.embedder)
vectors, rows = embed_pool(pool, embedder)
index = pool_index(vectors, config)

# 3. Candidates: neighbours in the cosine band (or pixel near-copies below it) with the same question
#    and different answers, plus edit plans (procedural for scenes, classical for photos) with their
#    expected new answers.
editors = EditorChoice(config.edit_model)
candidates = mine_retrieval(pool, vectors, rows, config, index, ctx)
candidates += plan_edits(pool, config, ctx, lambda rec: editors.for_record(rec).method)
assign_roles(candidates, config.seed)  # the edited image is the anchor in half of the edits (no role cue)
assign_labels(candidates, config.seed)  # half A, half B, seeded shuffle
for cand in candidates:
    ctx.counters[f"{cand.strategy}:candidates"] += 1
output.write_input_rejects(ctx.rejects)

# 4. Heavy per-task work: make the confounder, embed it, run the checks of vision/checks.py
#    (blank images, edit locality, duplicates by pixels, similarity band) -> Pair.
state = BuildState(pool, vectors, rows, embedder, editors, config)
tasks = chunk(candidates, config.shard_size)
run_tasks(output, tasks, vision_stages(state))
report = output.finalize(len(tasks), inputs=pool.inputs, global_ctx=ctx)
print(f"{report['pairs']} pairs {report['methods']} from {report['inputs']} inputs; rejected {report['rejected']} -> {out}")
