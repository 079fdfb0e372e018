"""The output folder: Arrow shards in the `datasets.save_to_disk` layout, rejects, config, report.

    out/
      pairs-00000.arrow ...      Arrow IPC stream shards cast to `schema.arrow_schema()`
      dataset_info.json          `datasets` features (so `load_from_disk(out)` works)
      state.json                 the shard list, as `datasets` expects it
      rejects.jsonl              one line per rejected input or candidate: source, reason, detail
      config.json                the resolved config of the run
      report.json                inputs, rejects by reason, per-stage in/out, pairs
      _work/                     per-task markers and rejects, for resuming

Work is split into deterministic tasks. Each task's shard is written to a temporary name and
renamed when complete; a `.done` marker is written last. A rerun skips tasks with a marker, so
a killed run resumes and finishes with the same shards; the same seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ctxdata import __version__
from ctxdata.errors import CtxdataError
from ctxdata.pipeline import Reject, RunContext, Stage, StageStats, run_stages
from ctxdata.schema import SCHEMA_VERSION, arrow_schema, features_dict

# Config keys that do not change the data (so they neither block a resume nor enter the shards).
VOLATILE_KEYS = frozenset({"out", "overwrite", "progress", "workers", "debug", "audit"})


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and an atomic rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def remove_dead_temporaries(folder: Path) -> int:
    """Delete `.NAME.tmp-PID` files whose writer is no longer running (a killed run's half-written files)."""
    removed = 0
    for tmp in folder.glob(".*.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: assume it is alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def stable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a config that determines the data."""
    return {k: v for k, v in sorted(config.items()) if k not in VOLATILE_KEYS}


def config_fingerprint(config: dict[str, Any]) -> str:
    blob = json.dumps(stable_config(config), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def rows_to_arrow_bytes(rows: list[dict[str, Any]], metadata: dict[str, str]) -> bytes:
    """Serialise rows (already in schema column order) to one Arrow IPC stream."""
    import pyarrow as pa

    schema = arrow_schema(metadata)
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)  # one batch, even when empty
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


class PairOutput:
    """A resumable output folder for one command's run."""

    def __init__(self, out: str | Path, config: dict[str, Any], *, command: str, overwrite: bool = False) -> None:
        self.out = Path(out)
        self.command = command
        self.config = {"command": command, **config}
        self.fingerprint = config_fingerprint(self.config)
        self.work = self.out / "_work"
        cfg_path = self.out / "config.json"
        if self.out.exists() and any(self.out.iterdir()):
            if not cfg_path.exists() and not overwrite:
                raise CtxdataError(f"{self.out} exists and is not a ctxdata output folder; choose another --out or pass --overwrite")
            old = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
            if old.get("_fingerprint") != self.fingerprint:
                if not overwrite:
                    changed = sorted(k for k in set(old) | set(self.config) if k not in VOLATILE_KEYS | {"_fingerprint", "ctxdata_version"} and old.get(k) != self.config.get(k))
                    raise CtxdataError(
                        f"{self.out} holds a run with a different config (changed: {', '.join(changed) or '?'}); "
                        "pass --overwrite to replace it, or choose another --out"
                    )
                shutil.rmtree(self.out)
        self.work.mkdir(parents=True, exist_ok=True)
        for folder in (self.out, self.work):  # a killed run's half-written shards and markers
            remove_dead_temporaries(folder)
        write_json(cfg_path, {**self.config, "_fingerprint": self.fingerprint, "ctxdata_version": __version__})
        self._shard_meta = {"ctxdata.config": json.dumps(stable_config(self.config), sort_keys=True, default=str)}

    # -- per-task work -------------------------------------------------------------------
    def _marker(self, task: int) -> Path:
        return self.work / f"task-{task:05d}.done"

    def task_result(self, task: int) -> dict[str, Any] | None:
        """The marker of a finished task, or None when it must (re)run."""
        marker = self._marker(task)
        if not marker.exists():
            return None
        result = json.loads(marker.read_text())
        if result.get("shard") and not (self.out / result["shard"]).exists():
            return None
        return result

    def write_task(self, task: int, rows: list[dict[str, Any]], ctx: RunContext) -> dict[str, Any]:
        """Write one task's shard, its rejects and, last, its marker."""
        shard = None
        if rows:
            shard = f"pairs-{task:05d}.arrow"
            atomic_write_bytes(self.out / shard, rows_to_arrow_bytes(rows, self._shard_meta))
        self._write_rejects(self.work / f"task-{task:05d}.rejects.jsonl", ctx.rejects)
        result = {
            "task": task,
            "shard": shard,
            "rows": len(rows),
            "stats": [s.to_dict() for s in ctx.stats.values()],
            "counters": dict(ctx.counters),
            "methods": dict(Counter(r["method"] for r in rows)),
            "labels": dict(Counter(r["label"] for r in rows)),
            "rejects": len(ctx.rejects),
        }
        write_json(self._marker(task), result)
        return result

    def write_input_rejects(self, rejects: Iterable[Reject]) -> None:
        """Rejects of the global (input-reading) phase."""
        self._write_rejects(self.work / "inputs.rejects.jsonl", rejects)

    @staticmethod
    def _write_rejects(path: Path, rejects: Iterable[Reject]) -> None:
        atomic_write_text(path, "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rejects))

    # -- the end ---------------------------------------------------------------------------
    def finalize(self, n_tasks: int, *, inputs: int, global_ctx: RunContext, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Merge task outputs into the `datasets` layout, `rejects.jsonl` and `report.json`."""
        stats: dict[str, StageStats] = {name: StageStats(name, s.n_in, s.n_out, Counter(s.dropped), s.in_unit) for name, s in global_ctx.stats.items()}
        counters, methods, labels = Counter(global_ctx.counters), Counter(), Counter()
        shards, n_rows = [], 0
        rejects_parts = [self.work / "inputs.rejects.jsonl"]
        for task in range(n_tasks):
            result = self.task_result(task)
            if result is None:
                raise CtxdataError(f"task {task} of {n_tasks} has not finished; rerun the command to resume")
            for s in result["stats"]:
                stats.setdefault(s["name"], StageStats(s["name"])).merge(s)
            counters.update(result["counters"])
            methods.update(result["methods"])
            labels.update(result["labels"])
            n_rows += result["rows"]
            if result["shard"]:
                shards.append(result["shard"])
            rejects_parts.append(self.work / f"task-{task:05d}.rejects.jsonl")
        if not shards:  # `load_from_disk` needs at least one shard, even for zero pairs
            shards.append("pairs-empty.arrow")
            atomic_write_bytes(self.out / shards[0], rows_to_arrow_bytes([], self._shard_meta))

        rejected: Counter = Counter()
        reject_kinds: Counter = Counter()
        with open(self.out / ".rejects.jsonl.tmp", "w", encoding="utf-8") as dst:
            for part in rejects_parts:
                if part.exists():
                    for line in part.read_text(encoding="utf-8").splitlines():
                        rej = json.loads(line)
                        rejected[rej["reason"]] += 1
                        reject_kinds[rej["kind"]] += 1
                        dst.write(line + "\n")
        os.replace(self.out / ".rejects.jsonl.tmp", self.out / "rejects.jsonl")

        digest = hashlib.sha256("".join(hashlib.sha256((self.out / s).read_bytes()).hexdigest() for s in shards).encode()).hexdigest()[:16]
        write_json(self.out / "dataset_info.json", {
            "builder_name": "ctxdata",
            "description": f"ctxdata contrastive-context pairs ({self.command})",
            "citation": CITATION,
            "features": features_dict(),
            "homepage": "https://arxiv.org/abs/2606.17053",
            "license": "",
                    })
        write_json(self.out / "state.json", {
            "_data_files": [{"filename": s} for s in shards],
            "_fingerprint": digest,
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": None,
        })
        report = {
            "command": self.command,
            "inputs": inputs,
            "inputs_rejected": reject_kinds.get("input", 0),
            "records_rejected": reject_kinds.get("record", 0),
            "candidates_rejected": reject_kinds.get("candidate", 0),
            "rejected": dict(sorted(rejected.items())),
            "stages": [s.to_dict() for s in stats.values()],
            "pairs": n_rows,
            "methods": dict(sorted(methods.items())),
            "labels": dict(sorted(labels.items())),
            "counters": dict(sorted(counters.items())),
            "shards": shards,
            "schema_version": SCHEMA_VERSION,
            "ctxdata_version": __version__,
            **(extra or {}),
        }
        write_json(self.out / "report.json", report)
        return report


def pair_to_row(pair: Any) -> dict[str, Any]:
    return pair.to_row()


def run_one_task(args: tuple) -> dict[str, Any]:
    """Run the stages over one task's items and write its shard (also the worker entry point)."""
    output, stages, to_row, index, items = args
    ctx = RunContext()
    rows = [to_row(pair) for pair in run_stages(stages, items, ctx)]
    return output.write_task(index, rows, ctx)


def run_tasks(
    output: PairOutput,
    tasks: Sequence[Sequence[Any]],
    stages: list[Stage],
    *,
    to_row: Callable[[Any], dict[str, Any]] = pair_to_row,
    on_task: Callable[[int, int], None] | None = None,
    workers: int = 1,
    pool: Any = None,
) -> int:
    """Run `stages` over each task's items, writing one shard per task; skip finished tasks.

    Tasks are independent, so `workers > 1` runs them in spawned processes (stages and `to_row`
    must then be picklable), or on an existing `parallel.worker_pool`; each task still writes its
    own shard, so the bytes do not depend on the number of workers. Returns how many tasks a
    previous run had already finished.
    `on_task(task_index, n_items)` is called after each task (for progress bars).
    """
    from ctxdata.parallel import map_ordered

    todo = [i for i in range(len(tasks)) if output.task_result(i) is None]
    done = set(range(len(tasks))) - set(todo)
    for index in sorted(done):
        if on_task is not None:
            on_task(index, len(tasks[index]))
    jobs = [(output, stages, to_row, i, tasks[i]) for i in todo]
    for job, _ in zip(jobs, map_ordered(run_one_task, jobs, workers, pool=pool)):
        if on_task is not None:
            on_task(job[3], len(job[4]))
    return len(tasks) - len(todo)


def read_report(out: str | Path) -> dict[str, Any]:
    path = Path(out) / "report.json"
    if not path.exists():
        raise CtxdataError(f"{out} has no report.json: is it a finished ctxdata output folder?")
    return json.loads(path.read_text())


def read_shard(path: Path):
    """One Arrow shard as a table; a missing or damaged one is a CtxdataError naming it."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_stream(source).read_all()
    except (OSError, pa.ArrowException) as exc:
        raise CtxdataError(f"shard {path} cannot be read ({exc}); rebuild the output folder (rerun the command with --overwrite)") from None


def iter_rows(out: str | Path, columns: list[str] | None = None) -> Iterable[dict[str, Any]]:
    """Rows of an output folder, shard by shard, without importing `datasets`."""
    out = Path(out)
    state_path = out / "state.json"
    if not state_path.exists():
        raise CtxdataError(f"{out} has no state.json: not a ctxdata/datasets output folder")
    for entry in json.loads(state_path.read_text())["_data_files"]:
        table = read_shard(out / entry["filename"])
        if columns:
            table = table.select(columns)
        yield from table.to_pylist()


CITATION = """@article{contextrl2026,
  title   = {Context-Aware RL for Agentic and Multimodal LLMs},
  journal = {arXiv preprint arXiv:2606.17053},
  year    = {2026}
}"""
