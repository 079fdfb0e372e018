"""`ctxdata push`: the staged Hub layout loads back exactly, uploads get the right arguments,
network failures are clean and resumable, and the token never leaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_pair, png_bytes
from ctxdata.cli.main import app
from ctxdata.io import PairOutput
from ctxdata.engine import run_tasks
from ctxdata.pipeline import Filter, RunContext
from ctxdata.schema import COLUMNS, Check, image_cell

SENTINEL = "hf_SENTINELtokenDoNotLeak0123456789"


class DropQueriesEndingIn3(Filter):
    name = "drop_3"

    def keep(self, pair):
        return (not pair.query.endswith("3"), "ends_in_3")


def build_mixed(out: Path, n: int = 4) -> dict:
    """Two tasks: coding pairs (with nasty text) and vision pairs (distinct pixels, local paths)."""
    coding = [make_pair(query=f"code {i}", label="AB"[i % 2], context_a_text=f"## Step 1\n<b>&{i}</b>\n$ ls\n(exit 0)") for i in range(n)]
    vision = [
        make_pair(
            domain="vision",
            query=f"colour {i}",
            label="BA"[i % 2],
            method="edit:procedural" if i % 2 else "retrieval:faiss",
            context_a_image=image_cell(png_bytes((10 * i, 200, 40), size=(12, 9)), f"/home/someone/photos/a{i}.png"),
            context_b_image=image_cell(png_bytes((10 * i, 20, 240), size=(12, 9)), None),
            checks=[Check("contexts_differ", i != 1, 0.5)],
        )
        for i in range(n)
    ]
    output = PairOutput(out, {"seed": 3, "traces": "/data/traces", "out": str(out)}, command="test")
    run_tasks(output, [coding, vision], [DropQueriesEndingIn3()])
    return output.finalize(2, inputs=2 * n, global_ctx=RunContext())


@pytest.fixture
def built(tmp_path):
    out = tmp_path / "out"
    report = build_mixed(out)
    return out, report


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _rows_by_id(ds) -> dict[str, dict]:
    return {row["pair_id"]: row for row in ds}


def assert_same_rows(loaded, reference):
    import numpy as np

    got, want = _rows_by_id(loaded), _rows_by_id(reference)
    assert sorted(got) == sorted(want)
    for pid, row in want.items():
        for col in COLUMNS:
            a, b = got[pid][col.name], row[col.name]
            if col.kind == "image":
                assert (a is None) == (b is None), (pid, col.name)
                if a is not None:
                    assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))), (pid, col.name)
            else:
                assert a == b, (pid, col.name)


def test_dry_run_folder_loads_exactly_like_load_from_disk(built, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    out, report = built
    staging = tmp_path / "staging"
    hub = FakeHub(monkeypatch)
    monkeypatch.delenv("HF_TOKEN", raising=False)  # a dry run needs no token...
    result = invoke("push", str(out), "--repo-id", "me/pairs", "--dry-run", "--staging", str(staging))
    assert result.exit_code == 0, result.output
    assert hub.calls == []  # ...and makes no Hub call
    assert "upload_folder" in result.output and "nothing was sent" in result.output
    reference = datasets.load_from_disk(str(out))
    assert len(reference) == report["pairs"] == 6  # "code 3" and "colour 3" were dropped
    assert_same_rows(datasets.load_dataset(str(staging), split="train"), reference)  # default config: all
    for domain in ("coding", "vision"):
        part = datasets.load_dataset(str(staging), domain, split="train")
        assert set(part["domain"]) == {domain}
        assert_same_rows(part, reference.filter(lambda r: r["domain"] == domain))
    # local folders do not travel to the Hub: image paths become base names
    vision = datasets.load_dataset(str(staging), "vision", split="train").cast_column("context_a_image", datasets.Image(decode=False))
    assert sorted(vision["context_a_image"], key=lambda c: c["path"])[0]["path"] == "a0.png"


def test_max_shard_size_splits_parquet_shards(built, tmp_path):
    datasets = pytest.importorskip("datasets")
    out, _ = built
    staging = tmp_path / "s"
    result = invoke("push", str(out), "--repo-id", "me/pairs", "--dry-run", "--staging", str(staging), "--max-shard-size", "300B")
    assert result.exit_code == 0, result.output
    shards = sorted(p.name for p in (staging / "data" / "vision").glob("*.parquet"))
    assert len(shards) == 3 and shards[-1] == "train-00002-of-00003.parquet"
    assert len(datasets.load_dataset(str(staging), "vision", split="train")) == 3


def test_bad_options_are_clean_errors(built):
    out, _ = built
    for args, needle in [(["--repo-id", "no-namespace"], "NAMESPACE/NAME"), (["--repo-id", "a/b", "--max-shard-size", "lots"], "not a size")]:
        result = invoke("push", str(out), *args, "--dry-run")
        assert result.exit_code == 1 and needle in result.output, result.output
        assert "Traceback" not in result.output


class FakeHub:
    """Records the calls a push makes on HfApi; `fail` makes upload_folder raise once."""

    def __init__(self, monkeypatch, fail: BaseException | None = None):
        import huggingface_hub

        self.calls: list[tuple[str, tuple, dict]] = []
        self.fail = fail
        fake = self

        def record(name):
            def method(api, *args, **kwargs):
                fake.calls.append((name, args, {**kwargs, "_token": api.token}))
                if name == "upload_folder" and fake.fail is not None:
                    exc, fake.fail = fake.fail, None
                    raise exc
                return None

            return method

        for name in ("create_repo", "create_branch", "upload_folder"):
            monkeypatch.setattr(huggingface_hub.HfApi, name, record(name))

    def names(self):
        return [c[0] for c in self.calls]


def _all_text_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_upload_gets_right_arguments_and_token_never_leaks(built, tmp_path, monkeypatch):
    out, _ = built
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    hub = FakeHub(monkeypatch)
    staging = tmp_path / "staging"
    result = invoke("push", str(out), "--repo-id", "me/pairs", "--private", "--revision", "v1", "--staging", str(staging))
    assert result.exit_code == 0, result.output
    assert hub.names() == ["create_repo", "create_branch", "upload_folder"]
    (_, args, create), (_, _, branch), (_, _, upload) = hub.calls
    assert args == ("me/pairs",) and create["repo_type"] == "dataset" and create["private"] is True and create["exist_ok"]
    assert branch["branch"] == "v1" and branch["repo_type"] == "dataset"
    assert upload["repo_id"] == "me/pairs" and upload["repo_type"] == "dataset" and upload["revision"] == "v1"
    assert Path(upload["folder_path"]) == staging and (staging / "README.md").exists()
    assert ".ctxdata-staging.json" in upload["ignore_patterns"]
    assert all(c[2]["_token"] == SENTINEL for c in hub.calls)  # the token reached the client...
    assert SENTINEL not in result.output  # ...and nowhere else
    assert SENTINEL.encode() not in _all_text_under(staging) + _all_text_under(out)


def test_main_revision_creates_no_branch(built, tmp_path, monkeypatch):
    out, _ = built
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    hub = FakeHub(monkeypatch)
    assert invoke("push", str(out), "--repo-id", "me/pairs").exit_code == 0
    assert hub.names() == ["create_repo", "upload_folder"]
    assert hub.calls[0][2]["private"] is False and hub.calls[1][2]["revision"] == "main"
    assert Path(hub.calls[1][2]["folder_path"]) == out / "_hub"


def test_missing_token_is_a_clean_error(built, monkeypatch):
    import huggingface_hub

    out, _ = built
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    result = invoke("push", str(out), "--repo-id", "me/pairs")
    assert result.exit_code == 1 and "HF_TOKEN" in result.output and "Traceback" not in result.output


def test_real_client_offline_failure_is_clean(built, tmp_path, monkeypatch):
    """No fakes: the real huggingface_hub client refuses (offline here) and we say what to do."""
    out, _ = built
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    result = invoke("push", str(out), "--repo-id", "me/pairs", "--staging", str(tmp_path / "st"))
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "failed at create_repo" in text and "rerun the same command to resume" in text
    assert "Traceback" not in result.output and SENTINEL not in result.output


def test_network_error_then_rerun_resumes(built, tmp_path, monkeypatch):
    httpx2 = pytest.importorskip("httpx2")  # huggingface_hub's HTTP client
    out, _ = built
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    hub = FakeHub(monkeypatch, fail=httpx2.ConnectError(f"connection reset while sending Bearer {SENTINEL}"))
    staging = tmp_path / "staging"
    first = invoke("push", str(out), "--repo-id", "me/pairs", "--staging", str(staging))
    assert first.exit_code == 1
    text = " ".join(first.output.split())
    assert "failed at upload_folder" in text and "ConnectError" in text and "rerun" in text
    assert SENTINEL not in first.output and "Traceback" not in first.output
    shards = sorted(staging.rglob("*.parquet"))
    stamps = {p: p.stat().st_mtime_ns for p in shards}

    second = invoke("push", str(out), "--repo-id", "me/pairs", "--staging", str(staging))
    assert second.exit_code == 0, second.output
    assert "reusing the staged shards" in second.output
    assert {p: p.stat().st_mtime_ns for p in sorted(staging.rglob("*.parquet"))} == stamps  # not rewritten
    uploads = [c for c in hub.calls if c[0] == "upload_folder"]
    assert len(uploads) == 2 and uploads[0][2]["folder_path"] == uploads[1][2]["folder_path"]


def test_changed_build_restages(built, tmp_path):
    out, _ = built
    staging = tmp_path / "staging"
    assert invoke("push", str(out), "--repo-id", "me/p", "--dry-run", "--staging", str(staging)).exit_code == 0
    marker = json.loads((staging / ".ctxdata-staging.json").read_text())
    assert invoke("push", str(out), "--repo-id", "me/p", "--dry-run", "--staging", str(staging), "--max-shard-size", "1KB").exit_code == 0
    assert json.loads((staging / ".ctxdata-staging.json").read_text())["fingerprint"] != marker["fingerprint"]


def test_refuses_a_foreign_non_empty_staging_folder(built, tmp_path):
    out, _ = built
    foreign = tmp_path / "home"
    (foreign / "data").mkdir(parents=True)
    (foreign / "data" / "precious.txt").write_text("keep me")
    result = invoke("push", str(out), "--repo-id", "me/p", "--dry-run", "--staging", str(foreign))
    assert result.exit_code == 1 and "not written by `ctxdata push`" in " ".join(result.output.split())
    assert (foreign / "data" / "precious.txt").read_text() == "keep me"


def test_interrupted_staging_is_redone_and_empty_builds_are_refused(built, tmp_path):
    datasets = pytest.importorskip("datasets")
    out, report = built
    staging = tmp_path / "staging"
    assert invoke("push", str(out), "--repo-id", "me/p", "--dry-run", "--staging", str(staging)).exit_code == 0
    # a crash mid-conversion leaves the claim marker without a fingerprint and a partial folder
    (staging / ".ctxdata-staging.json").write_text(json.dumps({"fingerprint": None, "domains": {}}))
    next(staging.rglob("*.parquet")).unlink()
    result = invoke("push", str(out), "--repo-id", "me/p", "--dry-run", "--staging", str(staging))
    assert result.exit_code == 0 and "reusing" not in result.output
    assert len(datasets.load_dataset(str(staging), split="train")) == report["pairs"]

    empty = tmp_path / "empty"
    PairOutput(empty, {"seed": 0}, command="test").finalize(0, inputs=0, global_ctx=RunContext())
    result = invoke("push", str(empty), "--repo-id", "me/p", "--dry-run")
    assert result.exit_code == 1 and "nothing to push" in result.output


def test_unauthorized_says_to_check_the_token(built, tmp_path, monkeypatch):
    httpx2 = pytest.importorskip("httpx2")
    from huggingface_hub.errors import HfHubHTTPError

    out, _ = built
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    response = httpx2.Response(401, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))
    hub = FakeHub(monkeypatch, fail=HfHubHTTPError("401 Client Error: Unauthorized", response=response))
    result = invoke("push", str(out), "--repo-id", "me/pairs", "--staging", str(tmp_path / "st"))
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "HfHubHTTPError: 401" in text and "token can write to me" in text
    assert hub.names() == ["create_repo", "upload_folder"] and SENTINEL not in result.output


def test_single_domain_build_has_one_config_that_loads_by_default(tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "coding-only"
    output = PairOutput(out, {"seed": 1}, command="test")
    run_tasks(output, [[make_pair(query=f"q{i}") for i in range(5)]], [])
    output.finalize(1, inputs=5, global_ctx=RunContext())
    assert invoke("push", str(out), "--repo-id", "me/coding", "--dry-run").exit_code == 0
    assert sorted(p.name for p in (out / "_hub" / "data").iterdir()) == ["coding"]
    assert_same_rows(datasets.load_dataset(str(out / "_hub"), split="train"), datasets.load_from_disk(str(out)))
