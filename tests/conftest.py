"""Shared test factories and markers. Tests that read ../shared skip cleanly when it is absent."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CTXDATA_SHARED", REPO.parent / "shared"))
SHARED_TRACES = SHARED / "data" / "traces"

os.environ.setdefault("CTXDATA_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory):
    """`ctxdata build-vision` on the built-in demo pool (once per session): (out folder, CLI output)."""
    pytest.importorskip("torch")
    pytest.importorskip("skimage")
    from typer.testing import CliRunner

    from ctxdata.cli.main import app

    out = tmp_path_factory.mktemp("demo") / "pairs"
    result = CliRunner().invoke(app, ["build-vision", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture
def shared_traces() -> Path:
    """The real public trajectories in ../shared/data/traces (skip when this clone has none)."""
    if not SHARED_TRACES.is_dir():
        pytest.skip("../shared/data/traces is not present in this clone")
    return SHARED_TRACES


def png_bytes(color=(200, 30, 30), size=(16, 16)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def make_pair(**overrides):
    """A valid Pair with sensible defaults; override any field (domain='vision' gets images)."""
    from ctxdata.schema import Check, Pair, image_cell

    domain = overrides.get("domain", "coding")
    fields = dict(
        domain=domain,
        query="Fix the crash when the URL has a trailing dot.",
        answer="--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n",
        answer_confounder="--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+c\n",
        label="A",
        method="condition:function" if domain == "coding" else "edit:procedural",
        similarity=0.8,
        anchor_id="repo__x-1",
        confounder_id="repo__x-2",
        checks=[Check("contexts_differ", True, 1.0)],
        meta={"repo": "owner/x"},
    )
    if domain == "coding":
        fields.update(context_a_text="$ pytest\n1 passed", context_b_text="$ pytest\n1 failed")
    else:
        fields.update(
            query="What colour is the square?",
            answer="red",
            answer_confounder="blue",
            context_a_image=image_cell(png_bytes((200, 30, 30))),
            context_b_image=image_cell(png_bytes((30, 30, 200))),
        )
    fields.update(overrides)
    return Pair(**fields)


@pytest.fixture
def pair_factory():
    return make_pair
