"""The dataset card: its YAML parses, its features are the schema's, its counts are the build's."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ctxdata.card import CardConfig, card_metadata, counts_markdown, size_category
from ctxdata.cli.main import app
from ctxdata.schema import COLUMNS, features_dict
from test_hub import build_mixed


def _split_card(text: str):
    import yaml

    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


@pytest.fixture
def card(tmp_path):
    out = tmp_path / "out"
    report = build_mixed(out)
    result = CliRunner().invoke(app, ["push", str(out), "--repo-id", "org/ctx-pairs", "--dry-run", "--license", "cc-by-4.0"])
    assert result.exit_code == 0, result.output
    meta, body = _split_card((out / "_hub" / "README.md").read_text())
    return meta, body, report, json.loads((out / "config.json").read_text())


def test_yaml_header_parses_and_features_match_schema(card):
    datasets = pytest.importorskip("datasets")
    meta, _, report, _ = card
    assert meta["license"] == "cc-by-4.0" and meta["size_categories"] == ["n<1K"]
    assert "visual-question-answering" in meta["task_categories"] and "text-generation" in meta["task_categories"]
    assert "contextrl" in meta["tags"]
    names = [c["config_name"] for c in meta["configs"]]
    assert names == ["all", "coding", "vision"] and meta["configs"][0]["default"] is True
    assert meta["configs"][1]["data_files"] == [{"split": "train", "path": "data/coding/train-*.parquet"}]
    want = datasets.Features.from_dict(features_dict())
    for info in meta["dataset_info"]:
        assert datasets.Features._from_yaml_list(info["features"]) == want
    by_name = {i["config_name"]: i["splits"][0]["num_examples"] for i in meta["dataset_info"]}
    assert by_name == {"all": report["pairs"], "coding": 3, "vision": 3}


def test_body_has_the_real_counts_provenance_schema_and_citation(card):
    _, body, report, config = card
    assert report["rejected"] == {"ends_in_3": 2}
    assert "| `ends_in_3` | 2 |" in body
    assert "| `drop_3` | 8 | 6 | ends_in_3: 2 |" in body
    for method, n in report["methods"].items():
        assert f"| `{method}` | {n} |" in body
    assert f"pairs written: **{report['pairs']}**" in body and f"inputs read: **{report['inputs']}**" in body
    assert '"traces": "/data/traces"' in body and f"ctxdata {config['ctxdata_version']}" in body
    for col in COLUMNS:
        assert f"| `{col.name}` |" in body
    assert "arXiv:2606.17053" in body and "@article" in body
    assert 'load_dataset("org/ctx-pairs", "coding", split="train")' in body


def test_counts_follow_the_report_not_a_template():
    report = {"inputs": 10, "pairs": 4, "stages": [{"name": "mine", "in": 10, "out": 4, "dropped": {"too_similar": 6}}], "methods": {"edit:sdxl": 4}, "rejected": {"too_similar": 6}, "labels": {"A": 1, "B": 3}}
    text = counts_markdown(report)
    assert "| `mine` | 10 | 4 | too_similar: 6 |" in text and "label A/B: 1/3" in text and "| `edit:sdxl` | 4 |" in text


def test_single_domain_card_has_one_config_and_size_category():
    meta = card_metadata([CardConfig("coding", "data/coding/train-*.parquet", 12_345, 99)], domains=["coding"], license="mit", pretty_name="x")
    assert [c["config_name"] for c in meta["configs"]] == ["coding"] and "default" not in meta["configs"][0]
    assert meta["size_categories"] == ["10K<n<100K"] and "visual-question-answering" not in meta["task_categories"]
    assert size_category(999) == "n<1K" and size_category(1000) == "1K<n<10K"
