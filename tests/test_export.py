"""Exports checked against each consumer's documented schema, on coding and vision pair folders."""

from __future__ import annotations

import io
import json

import pytest
import typer
from conftest import make_pair
from typer.testing import CliRunner

from ctxdata.errors import ConfigError
from ctxdata.export import DOCS, ExportConfig, export_pairs
from ctxdata.io import PairOutput
from ctxdata.pipeline import RunContext
from ctxdata.schema import image_cell

pq = pytest.importorskip("pyarrow.parquet")


def write_pairs(path, pairs):
    out = PairOutput(path, {"test": str(path)}, command="test")
    out.write_task(0, [p.to_row() for p in pairs], RunContext())
    out.finalize(1, inputs=len(pairs), global_ctx=RunContext())
    return path


@pytest.fixture
def coding_dir(tmp_path):
    return write_pairs(tmp_path / "coding", [make_pair(label="AB"[i % 2], anchor_id=f"c{i}") for i in range(4)])


@pytest.fixture
def vision_dir(tmp_path):
    pairs = [make_pair(domain="vision", label="AB"[i % 2], anchor_id=f"v{i}") for i in range(3)]
    return write_pairs(tmp_path / "vision", pairs)


@pytest.fixture
def mixed_dir(tmp_path):
    pairs = [make_pair(anchor_id="c0"), make_pair(domain="vision", anchor_id="v0", label="B")]
    return write_pairs(tmp_path / "mixed", pairs)


def user_text(prompt):
    return next(m["content"] for m in prompt if m["role"] == "user")


def open_image(data):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.mark.parametrize("folder", ["coding_dir", "vision_dir", "mixed_dir"])
def test_verl_parquet_follows_rlhfdataset(folder, request, tmp_path):
    src = request.getfixturevalue(folder)
    stats = export_pairs(src, tmp_path / "train.parquet", ExportConfig("verl", split="train"))
    table = pq.read_table(tmp_path / "train.parquet")
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info"} <= set(table.column_names)
    rows = table.to_pylist()
    assert len(rows) == stats["exported"] == stats["inputs"]
    for index, row in enumerate(rows):
        assert isinstance(row["prompt"], list) and row["prompt"][-1]["role"] == "user"
        assert row["reward_model"]["style"] == "rule" and row["reward_model"]["ground_truth"] in ("A", "B")
        assert isinstance(row["data_source"], str) and isinstance(row["ability"], str)
        assert row["extra_info"]["index"] == index and row["extra_info"]["split"] == "train"
        images = row.get("images") or []
        assert user_text(row["prompt"]).count("<image>") == len(images)  # verl splits the text on <image>
        for cell in images:
            assert set(cell) == {"bytes", "path"} and open_image(cell["bytes"]).size == (16, 16)
    if folder != "coding_dir":
        assert any(len(r["images"] or []) == 2 for r in rows)
    else:
        assert "images" not in table.column_names


@pytest.mark.parametrize("folder", ["coding_dir", "vision_dir", "mixed_dir"])
def test_easyr1_jsonl_follows_its_dataset_reader(folder, request, tmp_path):
    src = request.getfixturevalue(folder)
    out = tmp_path / "easyr1" / "train.jsonl"
    export_pairs(src, out, ExportConfig("easyr1"))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    for row in rows:
        assert isinstance(row["problem"], str) and row["answer"] in ("A", "B")
        images = row.get("images", [])
        assert row["problem"].count("<image>") == len(images)  # EasyR1 splits `problem` on <image>
        for rel in images:  # paths relative to data.image_dir = the JSONL's folder
            assert not rel.startswith("/") and open_image((out.parent / rel).read_bytes()).size == (16, 16)
    has_vision = folder != "coding_dir"
    assert all("images" in r for r in rows) == has_vision  # no images key at all for text-only data


def test_skyrl_jsonl_is_text_only_and_has_documented_fields(coding_dir, mixed_dir, tmp_path):
    stats = export_pairs(coding_dir, tmp_path / "s.jsonl", ExportConfig("skyrl"))
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and stats["skipped"] == {}
    for row in rows:
        assert row["prompt"][-1] == {"role": "user", "content": row["prompt"][-1]["content"]}
        assert row["correct_answer"] == row["reward_spec"]["ground_truth"] and row["reward_spec"]["method"] == "rule"
        assert isinstance(row["env_class"], str) and isinstance(row["data_source"], str) and "<image>" not in row["prompt"][-1]["content"]
    mixed = export_pairs(mixed_dir, tmp_path / "m.jsonl", ExportConfig("skyrl"))
    assert mixed["exported"] == 1 and mixed["skipped"] == {"skyrl export is text-only (the agentic trainer has no image inputs)": 1}


@pytest.mark.parametrize("folder", ["coding_dir", "mixed_dir"])
def test_trl_folder_is_a_conversational_prompt_dataset(folder, request, tmp_path):
    datasets = pytest.importorskip("datasets")
    src = request.getfixturevalue(folder)
    export_pairs(src, tmp_path / "trl", ExportConfig("trl"))
    ds = datasets.load_from_disk(str(tmp_path / "trl"))
    assert {"prompt", "answer"} <= set(ds.column_names)
    for row in ds:
        assert row["prompt"][-1]["role"] == "user" and row["answer"] in ("A", "B")
        content = row["prompt"][-1]["content"]
        if folder == "coding_dir":
            assert isinstance(content, str) and "images" not in ds.column_names
        else:
            n_image_parts = sum(part["type"] == "image" for part in content)
            assert n_image_parts == len(row["images"]) and all(im.size == (16, 16) for im in row["images"])


def test_broken_images_are_skipped_with_a_reason(tmp_path):
    bad = make_pair(domain="vision", anchor_id="bad", context_a_image=image_cell(b"not a png"))
    src = write_pairs(tmp_path / "bad", [bad, make_pair(domain="vision", anchor_id="ok")])
    stats = export_pairs(src, tmp_path / "v.parquet", ExportConfig("verl"))
    assert stats["exported"] == 1 and stats["skipped"] == {"image does not decode": 1}


def test_unknown_target_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="verl, easyr1, skyrl, trl"):
        ExportConfig("openrlhf")


def test_cli_export_and_help_cite_the_docs(coding_dir, tmp_path):
    from ctxdata.cli.export import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    help_text = CliRunner().invoke(app, ["export", "--help"], terminal_width=300).output
    assert all(url.split("/")[2] in help_text for url in DOCS.values())
    result = CliRunner().invoke(app, ["export", str(coding_dir), "--to", "skyrl", "--out", str(tmp_path / "x.jsonl"), "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 2
