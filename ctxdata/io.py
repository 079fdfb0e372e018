"""The output folder: Arrow shards in the `datasets.save_to_disk` layout, rejects, config, report.

    out/
      pairs-00000.arrow ...      Arrow IPC stream shards cast to `schema.arrow_schema()`
      dataset_info.json          `datasets` features (so `load_from_disk(out)` works)
      state.json                 the shard list, as `datasets` expects it
      rejects.jsonl              one line per rejected input or candidate: source, reason, detail
      config.json                the resolved config of the run
      report.json                inputs, rejects by reason, per-stage in/out, pairs
      .ctxdata-output            the ownership marker: only a folder holding it is ever deleted
      _work/                     per-task markers and rejects, and the input listing, for resuming

Work is split into deterministic tasks, run by an engine (`ctxdata.engine.run_tasks`); the driver
writes every task's result here. Each task's shard is written to a temporary name and
renamed when complete; a `.done` marker (with the shard's sha256) is written last. A rerun skips
tasks with a marker whose shard still matches its hash, so a killed run resumes and finishes with
the same shards; the same seed gives the same bytes.

A rerun resumes only onto the same config *and* the same inputs: the paths, sizes and mtimes
(or, with `hash_inputs`, the contents) of every file under the config's input paths (`traces`,
`results`, `pool`, `instructions`) are fingerprinted. A change refuses with a message naming what changed;
`--overwrite` rebuilds. `--overwrite` deletes only an empty folder or one holding the marker,
and an output folder may not be, contain or lie inside an input path.

Readers of a finished folder (`iter_rows`, `shard_paths`) check every shard against the sha256
recorded in `state.json` first, so a damaged or replaced shard is one error naming it.
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
from ctxdata.pipeline import Reject, RunContext, StageStats
from ctxdata.schema import SCHEMA_VERSION, arrow_schema, features_dict

# Config keys that do not change the data (so they neither block a resume nor enter the shards).
VOLATILE_KEYS = frozenset({"out", "overwrite", "progress", "workers", "debug", "hash_inputs", "audit",
                           "engine", "ray_address", "num_gpus", "concurrency", "batch_size"})
# Config keys that name input files or folders: fingerprinted for resume, protected from --overwrite.
INPUT_KEYS = ("traces", "results", "pool", "instructions")
MARKER = ".ctxdata-output"
SHARD_COLUMNS_CHECKED = ("pair_id", "domain", "query", "answer", "label", "method")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and an atomic rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:  # e.g. a full disk: a write error carries no file name, so name it here
        tmp.unlink(missing_ok=True)
        raise named_os_error(exc, path) from None
    os.replace(tmp, path)


def named_os_error(exc: OSError, path: str | Path) -> OSError:
    """`exc` with `path` as its file name when it has none (the CLI prints the name)."""
    if exc.filename:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path)) if exc.errno else OSError(f"{path}: {exc}")


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


def _as_json(value: Any) -> Any:
    """A config value as config.json holds it (tuples become lists), so an unchanged value compares equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def input_paths(config: dict[str, Any]) -> list[Path]:
    """The input files and folders a config names (under INPUT_KEYS)."""
    paths = []
    for key in INPUT_KEYS:
        value = config.get(key)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item not in (None, "") and not (key == "pool" and item == "demo"):
                paths.append(Path(item))
    return paths


def _walk_regular_files(root: Path) -> Iterable[Path]:
    """Regular files under `root` (or `root` itself), following symlinks once; hidden names skipped."""
    if not root.is_dir():
        if root.is_file():
            yield root
        return
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop, or a folder linked twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if not name.startswith(".") and path.is_file():
                yield path


def input_listing(paths: Sequence[Path], *, hash_content: bool = False) -> dict[str, str]:
    """Every input file -> "size:mtime_ns", or its sha256 with `hash_content` (what a resume compares)."""
    listing = {}
    for root in paths:
        for path in _walk_regular_files(root):
            name = os.fsencode(path).decode("utf-8", "backslashreplace")
            try:
                if hash_content:
                    listing[name] = _file_sha256(path)
                else:
                    st = path.stat()
                    listing[name] = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError as exc:  # unreadable: it still has an identity, so a later fix is a change
                listing[name] = f"unreadable:{exc.errno}"
    return listing


def _listing_digest(listing: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:16]


def _listing_changes(old: dict[str, str], new: dict[str, str]) -> str:
    parts = []
    for what, names in (
        ("removed", sorted(set(old) - set(new))),
        ("added", sorted(set(new) - set(old))),
        ("modified", sorted(k for k in set(old) & set(new) if old[k] != new[k])),
    ):
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            parts.append(f"{len(names)} {what} ({shown})")
    return "; ".join(parts) or "the input listing differs"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_out_apart_from_inputs(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse an output folder that is, contains or lies inside an input path (it would be read or deleted)."""
    real_out = os.path.realpath(out)
    for item in inputs:
        real_in = os.path.realpath(item)
        if _inside(real_in, real_out):
            raise CtxdataError(
                f"--out {out} is or contains the input {item}; choose an output folder apart from the inputs"
            )
        if os.path.isdir(real_in) and _inside(real_out, real_in):
            raise CtxdataError(
                f"--out {out} lies inside the input folder {item} (its outputs would be read as inputs); "
                "choose an output folder outside it"
            )


def read_json_file(path: Path, what: str) -> Any:
    """A JSON file of an output folder; a damaged one is one CtxdataError naming it."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise CtxdataError(f"{path} ({what}) cannot be read: {type(exc).__name__}: {exc}") from None


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
        inputs = input_paths(self.config)
        check_out_apart_from_inputs(self.out, inputs)
        listing = input_listing(inputs, hash_content=bool(self.config.get("hash_inputs")))
        inputs_digest = _listing_digest(listing)
        cfg_path = self.out / "config.json"
        if self.out.is_dir() and any(self.out.iterdir()):
            if not (self.out / MARKER).is_file():
                raise CtxdataError(
                    f"{self.out} is not empty and is not a ctxdata output folder (it has no {MARKER} marker); "
                    "ctxdata never deletes such a folder, even with --overwrite: choose another --out"
                )
            problem = self._resume_problem(cfg_path, inputs_digest, listing)
            if problem:
                if overwrite or not self._has_finished_work():
                    shutil.rmtree(self.out)  # ours (marker), and either asked for or holding no finished work
                else:
                    raise CtxdataError(
                        f"{self.out} {problem}; pass --overwrite to rebuild it, or choose another --out"
                    )
        elif self.out.exists() and not self.out.is_dir():
            raise CtxdataError(f"--out {self.out} is a file, not a folder")
        self.work.mkdir(parents=True, exist_ok=True)
        marker = self.out / MARKER
        if not marker.exists():
            write_json(marker, {"ctxdata_version": __version__, "command": command})
        for folder in (self.out, self.work):  # a killed run's half-written shards and markers
            remove_dead_temporaries(folder)
        write_json(self.work / "inputs.json", listing)
        write_json(
            cfg_path,
            {
                **self.config,
                "_fingerprint": self.fingerprint,
                "_inputs": inputs_digest,
                "ctxdata_version": __version__,
            },
        )
        self._shard_meta = {"ctxdata.config": json.dumps(stable_config(self.config), sort_keys=True, default=str)}

    def _resume_problem(self, cfg_path: Path, inputs_digest: str, listing: dict[str, str]) -> str | None:
        """Why this folder cannot be resumed by this run (another config, changed inputs), or None."""
        try:
            old = read_json_file(cfg_path, "the run's config")
        except (FileNotFoundError, CtxdataError):
            return "has no readable config.json"
        if not isinstance(old, dict):
            return "has a config.json that is not a JSON object"
        if old.get("_fingerprint") != self.fingerprint:
            skip = VOLATILE_KEYS | {"_fingerprint", "_inputs", "ctxdata_version"}
            current = _as_json(self.config)
            changed = sorted(k for k in set(old) | set(current) if k not in skip and old.get(k) != current.get(k))
            return f"holds a run with a different config (changed: {', '.join(changed) or 'the fingerprint'})"
        if old.get("_inputs") != inputs_digest and bool(old.get("hash_inputs")) != bool(self.config.get("hash_inputs")):
            return "was built with another --hash-inputs setting (its input listing cannot be compared)"
        if old.get("_inputs") != inputs_digest:
            try:
                before = read_json_file(self.work / "inputs.json", "the input listing")
            except (FileNotFoundError, CtxdataError):
                before = {}
            changes = _listing_changes(before if isinstance(before, dict) else {}, listing)
            return f"was built from other inputs (input files since then: {changes})"
        return None

    def _has_finished_work(self) -> bool:
        """Whether the folder holds anything a run finished (so a config change must not discard it silently)."""
        return (
            (self.out / "report.json").exists()
            or (self.work / "inputs.rejects.jsonl").exists()
            or any(self.work.glob("task-*.done"))
        )

    # -- per-task work -------------------------------------------------------------------
    def _marker(self, task: int) -> Path:
        return self.work / f"task-{task:05d}.done"

    def task_result(self, task: int, *, verify: bool = False) -> dict[str, Any] | None:
        """The marker of a finished task, or None when it must (re)run.

        `verify` also checks the shard's bytes against the sha256 in the marker (a resume does, so
        a shard damaged between runs is rebuilt rather than kept).
        """
        marker = self._marker(task)
        try:
            result = json.loads(marker.read_bytes())
        except (OSError, ValueError):  # missing, or half-written by a killed run
            return None
        if not isinstance(result, dict) or not {"shard", "rows", "stats", "sha256"} <= set(result):
            return None
        if result["shard"]:
            shard = self.out / result["shard"]
            if not shard.is_file() or (verify and _file_sha256(shard) != result["sha256"]):
                return None
        return result

    def write_task(self, task: int, rows: list[dict[str, Any]], ctx: RunContext) -> dict[str, Any]:
        """Write one task's shard, its rejects and, last, its marker."""
        shard, sha256 = None, None
        if rows:
            shard = f"pairs-{task:05d}.arrow"
            data = rows_to_arrow_bytes(rows, self._shard_meta)
            sha256 = hashlib.sha256(data).hexdigest()
            atomic_write_bytes(self.out / shard, data)
        self._write_rejects(self.work / f"task-{task:05d}.rejects.jsonl", ctx.rejects)
        result = {
            "task": task,
            "shard": shard,
            "sha256": sha256,
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
    def finalize(
        self,
        n_tasks: int,
        *,
        inputs: int,
        global_ctx: RunContext,
        extra: dict[str, Any] | None = None,
        summarize: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Merge task outputs into the `datasets` layout, `rejects.jsonl` and `report.json` (written once).

        `summarize(report)` adds a build's own summary fields, computed from the merged report.
        """
        stats: dict[str, StageStats] = {
            name: StageStats(name, s.n_in, s.n_out, Counter(s.dropped), s.in_unit)
            for name, s in global_ctx.stats.items()
        }
        counters, methods, labels = Counter(global_ctx.counters), Counter(), Counter()
        shards, hashes, n_rows = [], [], 0
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
                hashes.append(result["sha256"])
            rejects_parts.append(self.work / f"task-{task:05d}.rejects.jsonl")
        if not shards:  # `load_from_disk` needs at least one shard, even for zero pairs
            shards.append("pairs-empty.arrow")
            data = rows_to_arrow_bytes([], self._shard_meta)
            hashes.append(hashlib.sha256(data).hexdigest())
            atomic_write_bytes(self.out / shards[0], data)
        for stale in set(p.name for p in self.out.glob("pairs-*.arrow")) - set(shards):  # no shard outlives its run
            (self.out / stale).unlink()

        rejected: Counter = Counter()
        reject_kinds: Counter = Counter()
        with open(self.out / ".rejects.jsonl.tmp", "w", encoding="utf-8") as dst:
            for part in rejects_parts:
                if part.exists():
                    for line in part.read_text(encoding="utf-8").splitlines():
                        rej = json.loads(line)  # written by this run's tasks: a bad line is a bug, not data
                        rejected[rej["reason"]] += 1
                        reject_kinds[rej["kind"]] += 1
                        dst.write(line + "\n")
        os.replace(self.out / ".rejects.jsonl.tmp", self.out / "rejects.jsonl")

        digest = hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]
        write_json(
            self.out / "dataset_info.json",
            {
                "builder_name": "ctxdata",
                "description": f"ctxdata contrastive-context pairs ({self.command})",
                "citation": CITATION,
                "features": features_dict(),
                "homepage": "https://arxiv.org/abs/2606.17053",
                "license": "",
            },
        )
        write_json(
            self.out / "state.json",
            {
                "_data_files": [
                    {"filename": s, "sha256": h} for s, h in zip(shards, hashes)
                ],  # `datasets` reads filename only
                "_fingerprint": digest,
                "_format_columns": None,
                "_format_kwargs": {},
                "_format_type": None,
                "_output_all_columns": False,
                "_split": None,
            },
        )
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
        if summarize is not None:
            report.update(summarize(report))
        write_json(self.out / "report.json", report)
        return report


# What the commands that read a report use; a report without them is not one of ours.
REPORT_FIELDS = {
    "inputs": int,
    "pairs": int,
    "stages": list,
    "methods": dict,
    "labels": dict,
    "rejected": dict,
    "shards": list,
}


def read_report(out: str | Path) -> dict[str, Any]:
    path = Path(out) / "report.json"
    try:
        report = read_json_file(path, "the build report")
    except FileNotFoundError:
        raise CtxdataError(f"{out} has no report.json: is it a finished ctxdata output folder?") from None
    bad = [
        k for k, kind in REPORT_FIELDS.items() if not isinstance(report, dict) or not isinstance(report.get(k), kind)
    ]
    if bad:
        raise CtxdataError(
            f"{path} is not a ctxdata build report (missing or malformed: {', '.join(bad)}); rebuild the folder"
        )
    return report


def shard_paths(out: str | Path) -> list[Path]:
    """The shards `state.json` lists, each checked against its recorded sha256; a mismatch is one error naming it.

    A `datasets` folder written by another tool has no hashes; its shards are read unchecked
    (`iter_rows` still refuses one without the pair columns).
    """
    out = Path(out)
    state_path = out / "state.json"
    try:
        state = read_json_file(state_path, "the shard list")
    except FileNotFoundError:
        raise CtxdataError(f"{out} has no state.json: not a ctxdata/datasets output folder") from None
    entries = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("filename"), str) for e in entries
    ):
        raise CtxdataError(f"{state_path} has no valid `_data_files` list of shards; rebuild the output folder")
    paths = []
    for entry in entries:
        name = entry["filename"]
        if Path(name).name != name or name in ("", ".", ".."):
            raise CtxdataError(f"{state_path} names a shard outside the folder: {name!r}")
        path = out / name
        expected = entry.get("sha256")
        if expected is not None:
            try:
                actual = _file_sha256(path)
            except OSError as exc:
                raise CtxdataError(
                    f"shard {path} cannot be read ({exc.strerror or exc}); "
                    "rebuild the output folder (rerun the command with --overwrite)"
                ) from None
            if actual != expected:
                raise CtxdataError(
                    f"shard {path} does not match its sha256 in state.json (changed or damaged after the build); "
                    "rebuild the output folder (rerun the command with --overwrite)"
                )
        paths.append(path)
    return paths


def read_shard(path: Path):
    """One Arrow shard of pairs as a table; a missing, damaged or foreign one is a CtxdataError naming it."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
    except (OSError, pa.ArrowException) as exc:
        raise CtxdataError(
            f"shard {path} cannot be read ({exc}); rebuild the output folder (rerun the command with --overwrite)"
        ) from None
    missing = [c for c in SHARD_COLUMNS_CHECKED if c not in table.column_names]
    if missing:
        raise CtxdataError(f"shard {path} is not a ctxdata pair shard (no column {', '.join(missing)})")
    return table


def iter_rows(out: str | Path, columns: list[str] | None = None) -> Iterable[dict[str, Any]]:
    """Rows of an output folder, shard by shard (each checked first), without importing `datasets`."""
    import pyarrow as pa

    for path in shard_paths(out):
        table = read_shard(path)
        missing = [c for c in columns or () if c not in table.column_names]
        if missing:
            raise CtxdataError(f"shard {path} has no column {', '.join(missing)}")
        if columns:
            table = table.select(columns)
        try:
            rows = table.to_pylist()
        except (pa.ArrowException, ValueError) as exc:  # e.g. invalid UTF-8 in a string column of a foreign shard
            raise CtxdataError(
                f"shard {path} cannot be decoded ({type(exc).__name__}: {exc}); rebuild the output folder"
            ) from None
        yield from rows


CITATION = """@article{contextrl2026,
  title   = {Context-Aware RL for Agentic and Multimodal LLMs},
  journal = {arXiv preprint arXiv:2606.17053},
  year    = {2026}
}"""
