"""`ctxdata view`: the static HTML viewer, unit-tested and driven in a real headless chromium."""

from __future__ import annotations

import io
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_pair
from ctxdata.cli.main import app
from ctxdata.io import PairOutput
from ctxdata.engine import run_tasks
from ctxdata.pipeline import RunContext
from ctxdata.schema import Check, image_cell
from ctxdata.view.render import first_divergent_step, split_steps

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
EVIL = "<script>alert('xss')</script> & <img src=x onerror=alert(1)>"


def trajectory(divergent_obs: str) -> str:
    return "\n".join([
        "## Step 1", "Look at the failing test.", "$ pytest tests/test_url.py -x", "1 failed", "(exit 1)",
        "## Step 2", "Find where the host is parsed.", "$ grep -n 'def parse_host' src/url.py", divergent_obs, "(exit 0)",
        "## Step 3", "Write the fix.", "$ git apply fix.patch", "[PATCH MASKED]", "(exit 0)",
        "## Step 4", f"Check the output {EVIL}", "$ pytest -q", "3 passed", "(exit 0)",
    ])


def photo(square: bool, size: int = 64) -> bytes:
    import numpy as np
    from PIL import Image

    x = np.zeros((size, size, 3), np.uint8)
    x[..., 0] = np.linspace(0, 255, size, dtype=np.uint8)[None, :]
    x[..., 1] = 120
    if square:
        x[16:48, 16:48] = (250, 250, 30)  # a 32x32 edit: a quarter of the image
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "PNG")
    return buf.getvalue()


def build(out: Path, n_coding: int = 3, n_vision: int = 3) -> dict:
    coding = [
        make_pair(query=f"Issue {i}: URL with trailing dot {EVIL}", label="AB"[i % 2], method=["condition:function", "condition:file"][i % 2],
                  context_a_text=trajectory("42:def parse_host(url):"), context_b_text=trajectory("17:def parse_host(netloc):"))
        for i in range(n_coding)
    ]
    vision = [
        make_pair(domain="vision", query=f"Is there a yellow square? ({i})", answer="yes", answer_confounder="no", label="BA"[i % 2],
                  method="edit:procedural", context_a_image=image_cell(photo(True)), context_b_image=image_cell(photo(False)),
                  checks=[Check("contexts_differ", True, 0.9), Check("answer_flip", i != 0, 0.4, "judge disagreed")])
        for i in range(n_vision)
    ]
    output = PairOutput(out, {"seed": 0}, command="test")
    run_tasks(output, [coding, vision], [])
    return output.finalize(2, inputs=n_coding + n_vision, global_ctx=RunContext())


def test_split_steps_and_first_divergent_step():
    a, b = split_steps(trajectory("old")), split_steps(trajectory("new"))
    assert [t for t, _ in a] == ["Step 1", "Step 2", "Step 3", "Step 4"]
    assert a[0][1].startswith("Look at the failing test.") and "(exit 1)" in a[0][1]
    assert first_divergent_step(a, b) == 1
    assert first_divergent_step(a, a) is None
    assert first_divergent_step(a, a[:2]) == 2
    assert split_steps("preamble\n## Step 1\nx")[0] == ("Context", "preamble")


def test_page_escapes_text_and_has_no_external_references(tmp_path):
    build(tmp_path / "out")
    result = CliRunner().invoke(app, ["view", str(tmp_path / "out"), "--html", str(tmp_path / "v.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "v.html").read_text()
    assert "<script>alert" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt; &amp; &lt;img" in page
    assert page.count("<script") == 1  # the viewer's own script, allowed by hash in the CSP
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "http-equiv=\"Content-Security-Policy\"" in page
    assert page.count('<article class="pair"') == 6
    assert page.count('<mark class="masked">[PATCH MASKED]</mark>') == 6  # both contexts of 3 coding pairs


def test_cli_filters_method_failed_checks_and_limit(tmp_path):
    build(tmp_path / "out", n_coding=4, n_vision=3)
    runner, html = CliRunner(), tmp_path / "v.html"

    def n_pairs(*args):
        result = runner.invoke(app, ["view", str(tmp_path / "out"), "--html", str(html), *args])
        assert result.exit_code == 0, result.output
        return html.read_text().count('<article class="pair"')

    assert n_pairs() == 7
    assert n_pairs("--method", "condition:file") == 2
    assert n_pairs("--method", "condition:file", "--method", "edit:procedural") == 5
    assert n_pairs("--failed-checks") == 1
    assert n_pairs("--limit", "3") == 3


def test_heatmap_marks_the_edited_region():
    from ctxdata.view.images import difference_heatmap

    _, changed = difference_heatmap({"bytes": photo(True)}, {"bytes": photo(False)})
    assert changed == pytest.approx(0.25, abs=0.01)
    _, none = difference_heatmap({"bytes": photo(False)}, {"bytes": photo(False)})
    assert none == 0.0


def _chromium_or_skip():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return sync_api


@contextmanager
def opened_page(html: Path):
    """The viewer page in headless chromium, recording console errors, requests and dialogs."""
    sync_api = _chromium_or_skip()
    seen = {"errors": [], "requests": [], "dialogs": []}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
            page.goto(html.as_uri())
            yield page, seen
        finally:
            browser.close()
    assert seen["errors"] == [] and seen["dialogs"] == []
    assert [u for u in seen["requests"] if not u.startswith(("file:", "data:"))] == []


@pytest.mark.requires_chromium
def test_viewer_in_headless_chromium(tmp_path):
    build(tmp_path / "out", n_coding=3, n_vision=3)
    html = tmp_path / "viewer.html"
    assert CliRunner().invoke(app, ["view", str(tmp_path / "out"), "--html", str(html)]).exit_code == 0
    with opened_page(html) as (page, _):
        pairs = page.locator("article.pair")
        assert pairs.count() == 6
        assert page.locator("#shown").inner_text() == "showing 6 of 6 pairs"

        # coding: the first divergent step (Step 2) is highlighted in both panels; the text is literal
        first = pairs.nth(0)
        assert first.locator(".step.divergent h4").all_inner_texts() == ["Step 2 first divergent step"] * 2
        assert EVIL in first.locator(".traj[data-slot=A]").inner_text()

        # the probe: the label is hidden until clicked; clicking reveals right/wrong and scores
        label = first.get_attribute("data-label")
        assert not first.locator(".solution").is_visible()
        first.locator("button[data-choice=A]").click()
        assert first.locator(".solution").is_visible()
        assert first.locator(".verdict").inner_text().startswith("right" if label == "A" else "wrong")
        second = pairs.nth(1)
        second.locator("button[data-choice=A]").click()
        expected = (label == "A") + (second.get_attribute("data-label") == "A")
        assert page.locator("#score").inner_text() == f"score: {expected} / 2"

        # vision: the heat-map toggle swaps side-by-side images for the difference map and back
        vision = page.locator("article.pair[data-domain=vision]").first
        assert vision.locator(".images").is_visible() and not vision.locator(".heatmap").is_visible()
        vision.screenshot(path=str(_artifacts() / "viewer-vision-pair.png"))
        vision.locator("button[data-action=heatmap]").click()
        assert vision.locator(".heatmap img").is_visible() and not vision.locator(".images").is_visible()
        assert vision.locator(".heatmap img").evaluate("img => img.complete && img.naturalWidth") == 64
        page.screenshot(path=str(_artifacts() / "viewer-heatmap.png"))
        vision.locator("button[data-action=heatmap]").click()
        assert vision.locator(".images").is_visible()

        # in-page filters
        page.select_option("#f-method", "condition:file")
        assert page.locator("article.pair:visible").count() == 1
        page.select_option("#f-method", "")
        page.check("#f-failed")
        assert page.locator("#shown").inner_text() == "showing 1 of 6 pairs"
        page.uncheck("#f-failed")
        page.screenshot(path=str(_artifacts() / "viewer.png"), full_page=False)


@pytest.mark.requires_chromium
@pytest.mark.slow
def test_viewer_renders_the_demo_build_in_headless_chromium(tmp_path, demo_out):
    """The real demo output (`build-vision` on the demo pool), not a hand-made fixture."""
    import json

    out, _ = demo_out
    report = json.loads((out / "report.json").read_text())
    html = tmp_path / "demo.html"
    assert CliRunner().invoke(app, ["view", str(out), "--html", str(html), "--limit", "1000"]).exit_code == 0
    with opened_page(html) as (page, _):
        pairs = page.locator("article.pair[data-domain=vision]")
        assert pairs.count() == report["pairs"] > 0
        # every side-by-side image decoded in the browser
        widths = page.locator("article.pair .images img").evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) == 2 * report["pairs"] and min(widths) > 0
        methods = set(page.locator("#f-method option").evaluate_all("os => os.map(o => o.value)"))
        assert {"edit:procedural", "retrieval:faiss"} <= methods
        page.screenshot(path=str(_artifacts() / "viewer-demo.png"), full_page=False)


def _artifacts() -> Path:
    path = REPO / "artifacts"
    path.mkdir(exist_ok=True)
    return path
