"""Push an output folder to the Hugging Face Hub as a Parquet dataset with a generated card.

    staging/
      data/coding/train-00000-of-00002.parquet ...   one config per domain
      data/vision/train-00000-of-00001.parquet
      README.md                                      the dataset card (ctxdata.card)
      .ctxdata-staging.json                          what was staged, for resuming (not uploaded)

Staging is resumable: Parquet shards are written to temporary names and renamed when all are done,
then the marker is written; a rerun on an unchanged build reuses them. The upload goes through
`HfApi.upload_folder`, which with `hf_xet` (the default) skips files already committed and
deduplicates data already uploaded, so rerunning after a network failure resumes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ctxdata import __version__
from ctxdata.card import CardConfig, render_card
from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.io import atomic_write_text, read_json_file, read_report, read_shard, shard_paths, write_json
from ctxdata.schema import DOMAINS, arrow_schema

STAGING_MARKER = ".ctxdata-staging.json"
ROWS_PER_GROUP = 100  # small row groups keep image rows streamable by the Hub's viewer
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def parse_size(text: str | int) -> int:
    """`500MB`, `1.5GB`, `256MiB` or a plain byte count -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else None
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f"--max-shard-size {text!r} is not a size; use e.g. 500MB, 2GB or 256MiB")
    return int(float(match.group(1)) * _UNITS[unit])


def check_repo_id(repo_id: str) -> str:
    if not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith((".", "-")):
        raise ConfigError(f"--repo-id {repo_id!r} must look like NAMESPACE/NAME (e.g. my-org/contextrl-pairs)")
    return repo_id


@dataclass
class StagedDataset:
    """What `stage_for_hub` produced: the folder, its configs and every file to upload."""

    folder: Path
    configs: list[CardConfig]
    domains: list[str]
    files: list[tuple[str, int]] = field(default_factory=list)  # (path in repo, bytes)
    reused: bool = False


def _data_fingerprint(out: Path, max_shard_bytes: int) -> str:
    state = read_json_file(out / "state.json", "the shard list")  # shard_paths checked it before staging
    blob = json.dumps([state.get("_fingerprint"), state["_data_files"], max_shard_bytes, __version__], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _embed_images(table):
    """Keep image bytes, reduce paths to base names (local folders do not belong on the Hub)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in [f.name for f in table.schema if pa.types.is_struct(f.type)]:
        col = table.column(name).combine_chunks()
        paths = pc.replace_substring_regex(col.field("path"), pattern=r"^.*[/\\]", replacement="")
        fixed = pa.StructArray.from_arrays([col.field("bytes"), paths], names=["bytes", "path"], mask=col.is_null())
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name), fixed)
    return table


class _RollingParquet:
    """Writes one domain's rows into Parquet files of at most `max_bytes` (in-memory Arrow size)."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.parts: list[Path] = []
        self.rows, self.nbytes, self._writer, self._size = 0, 0, None, 0

    def write(self, table) -> None:
        import pyarrow.parquet as pq

        if self._writer is not None and self._size + table.nbytes > self.max_bytes:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.parts.append(self.folder / f".tmp-train-{len(self.parts):05d}.parquet")
            self._writer, self._size = pq.ParquetWriter(str(self.parts[-1]), arrow_schema()), 0
        self._writer.write_table(table, row_group_size=ROWS_PER_GROUP)
        self._size += table.nbytes
        self.rows += table.num_rows
        self.nbytes += table.nbytes

    def finish(self) -> list[Path]:
        if self._writer is not None:
            self._writer.close()
        final = []
        for i, part in enumerate(self.parts):
            final.append(part.with_name(f"train-{i:05d}-of-{len(self.parts):05d}.parquet"))
            part.replace(final[-1])
        return final


def _convert(shards: list[Path], folder: Path, max_shard_bytes: int, on_shard=None) -> dict[str, dict[str, Any]]:
    """Arrow shards (checked by `shard_paths`) -> Parquet shards per domain under `folder/data/<domain>/`."""
    import pyarrow.compute as pc

    shutil.rmtree(folder / "data", ignore_errors=True)
    writers: dict[str, _RollingParquet] = {}
    for path in shards:
        table = read_shard(path)
        table = _embed_images(table.cast(arrow_schema()))
        for domain in DOMAINS:
            part = table.filter(pc.equal(table.column("domain"), domain))
            if not part.num_rows:
                continue
            # chunks small enough that a shard can close near max_shard_bytes (>= 1 row each)
            step = max(1, min(ROWS_PER_GROUP, max_shard_bytes * part.num_rows // max(1, part.nbytes)))
            writer = writers.setdefault(domain, _RollingParquet(folder / "data" / domain, max_shard_bytes))
            for start in range(0, part.num_rows, step):
                writer.write(part.slice(start, step))
        if on_shard is not None:
            on_shard()
    stats = {}
    for domain, writer in writers.items():
        files = writer.finish()
        stats[domain] = {"rows": writer.rows, "nbytes": writer.nbytes, "files": [f.relative_to(folder).as_posix() for f in files]}
    return stats


def stage_for_hub(out: str | Path, staging: str | Path, *, repo_id: str, max_shard_size: str | int = "500MB", license: str = "other", on_shard=None) -> StagedDataset:
    """Write (or reuse) the Hub layout of `out` in `staging`: Parquet shards per domain + README.md."""
    out, folder = Path(out), Path(staging)
    report = read_report(out)
    if not report.get("pairs"):
        raise CtxdataError(f"{out} holds no pairs (report.json: pairs = 0): nothing to push")
    shards = shard_paths(out)  # every shard checked against state.json before anything is staged or pushed
    config = read_json_file(out / "config.json", "the run's config") if (out / "config.json").exists() else {}
    max_bytes = parse_size(max_shard_size)
    fingerprint = _data_fingerprint(out, max_bytes)
    marker = folder / STAGING_MARKER
    old = read_json_file(marker, "the staging marker") if marker.exists() else {}
    reused = old.get("fingerprint") == fingerprint and all((folder / f).exists() for s in old["domains"].values() for f in s["files"])
    if reused:
        stats = old["domains"]
    else:
        if folder.exists() and any(folder.iterdir()) and not marker.exists():
            raise CtxdataError(f"--staging {folder} is not empty and was not written by `ctxdata push`; choose an empty or new folder")
        folder.mkdir(parents=True, exist_ok=True)
        write_json(marker, {"fingerprint": None, "domains": {}})  # claims the folder; complete only when rewritten below
        stats = _convert(shards, folder, max_bytes, on_shard)
        write_json(marker, {"fingerprint": fingerprint, "source": str(out.resolve()), "domains": stats})
    domains = [d for d in DOMAINS if d in stats]
    configs = [CardConfig(d, f"data/{d}/train-*.parquet", stats[d]["rows"], stats[d]["nbytes"], files=stats[d]["files"]) for d in domains]
    if len(configs) > 1:  # every domain at once, so `load_dataset(repo_id)` works without a config name
        configs.insert(0, CardConfig("all", "data/*/train-*.parquet", sum(c.num_examples for c in configs), sum(c.num_bytes for c in configs), default=True))
    card = render_card(repo_id=repo_id, configs=configs, domains=domains, report=report, config=config, license=license)
    atomic_write_text(folder / "README.md", card)
    files = sorted(f for s in stats.values() for f in s["files"]) + ["README.md"]
    return StagedDataset(folder, configs, domains, [(f, (folder / f).stat().st_size) for f in files], reused)


def planned_operations(staged: StagedDataset, repo_id: str, *, revision: str, private: bool) -> list[str]:
    """The Hub calls a push makes, in order (printed by --dry-run)."""
    ops = [f"create_repo({repo_id!r}, repo_type='dataset', private={private}, exist_ok=True)"]
    if revision != "main":
        ops.append(f"create_branch({repo_id!r}, branch={revision!r}, repo_type='dataset', exist_ok=True)")
    ops.append(f"upload_folder(repo_id={repo_id!r}, repo_type='dataset', folder_path={str(staged.folder)!r}, revision={revision!r}): {len(staged.files)} files")
    return ops


def _network_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub import errors

    # HfHubHTTPError derives from the HTTP client's HTTPError, whose transport errors (connect,
    # timeout) are not OSErrors; catching that base catches both without naming the client library.
    http_base = next((c for c in errors.HfHubHTTPError.__mro__[1:] if c.__name__ == "HTTPError"), OSError)
    return (OSError, http_base)


def resolve_token() -> str:
    """The Hub token from HF_TOKEN or the standard login; never printed."""
    from ctxdata._deps import require

    token = require("huggingface_hub", "hub").get_token()
    if not token:
        raise CtxdataError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then rerun")
    return token


def upload_staged(staged: StagedDataset, repo_id: str, *, revision: str, private: bool, token: str) -> str:
    """Create the repo (and branch) and upload the staged folder; returns the commit URL."""
    from ctxdata._deps import require

    hub = require("huggingface_hub", "hub")
    api = hub.HfApi(token=token)
    step = "create_repo"
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision != "main":
            step = "create_branch"
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        step = "upload_folder"
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(staged.folder),
            repo_type="dataset",
            revision=revision,
            commit_message=f"Upload {repo_id.split('/')[-1]} with ctxdata {__version__}",
            ignore_patterns=[STAGING_MARKER, ".cache/**"],
        )
    except _network_errors() as exc:
        detail = str(exc).replace(token, "***").splitlines()[0][:300] if str(exc) else ""
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = f" Check that your token can write to {repo_id.split('/')[0]}." if status in (401, 403) else ""
        raise CtxdataError(
            f"pushing to https://huggingface.co/datasets/{repo_id} failed at {step} ({type(exc).__name__}: {detail}).{hint} "
            f"The staged folder {staged.folder} is kept: rerun the same command to resume "
            "(staged shards are reused and files already on the Hub are skipped)."
        ) from None
    return str(getattr(info, "commit_url", "") or f"https://huggingface.co/datasets/{repo_id}/tree/{revision}")


def default_staging(out: str | Path) -> Path:
    return Path(out) / "_hub"


def plan_dict(staged: StagedDataset, repo_id: str, *, revision: str, private: bool) -> dict[str, Any]:
    return {
        "repo_id": repo_id,
        "repo_type": "dataset",
        "revision": revision,
        "private": private,
        "folder": str(staged.folder),
        "reused_staging": staged.reused,
        "configs": [asdict(c) for c in staged.configs],
        "files": [{"path": p, "bytes": n} for p, n in staged.files],
        "operations": planned_operations(staged, repo_id, revision=revision, private=private),
    }
