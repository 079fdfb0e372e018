"""Exports checked against each consumer's documented schema, on coding and vision pair folders.

The consumers' own loaders read the exports in tests/test_export_consumers.py; here the rows, the
fitting under a token limit, the rejects, the shipped scorers and the CLI are checked, with a small
offline BPE tokenizer (ctxdata.train.tiny) so nothing waits for a model.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import typer
from conftest import make_pair
from typer.testing import CliRunner

from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.export import DOCS, TARGETS, ExportConfig, export_pairs, percentile
from ctxdata.export.paper import FORK_SUFFIX
from ctxdata.io import PairOutput
from ctxdata.pipeline import RunContext
from ctxdata.schema import image_cell

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("transformers")

# What policies really answer, and the letter each one chose.
ANSWERS = [
    ("A", "A"),
    (" B", "B"),
    ("Context A", "A"),
    ("context B.", "B"),
    ("<answer>B</answer>", "B"),
    ("\\boxed{A}", "A"),
    ("<think>A or B? B looks wrong</think> Context A", "A"),
    ("(B)", "B"),
    ("The answer is \\boxed{B}", "B"),
    ("A careful look shows context B", "B"),
    ("neither", None),
    ("", None),
]
SCORERS = {"verl": "verl_reward.py", "easyr1": "easyr1_reward.py", "skyrl": "skyrl_env.py", "trl": "trl_reward.py"}


def write_pairs(path, pairs):
    out = PairOutput(path, {"test": str(path)}, command="test")
    out.write_task(0, [p.to_row() for p in pairs], RunContext())
    out.finalize(1, inputs=len(pairs), global_ctx=RunContext())
    return path


@pytest.fixture(scope="session")
def tok(tmp_path_factory):
    from ctxdata.train.tiny import build_tokenizer

    path = tmp_path_factory.mktemp("tok")
    build_tokenizer().save_pretrained(path)
    return str(path)


def cfg(target, tok, **kw):
    return ExportConfig(target, tokenizer=tok, **kw)


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


def long_trace(decisive, n=120):
    filler = "\n".join(f"step {i}: ls -la src/module_{i} && grep -c TODO src/module_{i}/*.py" for i in range(n))
    return f"{filler}\n$ pytest tests/test_x.py -q\n{decisive}\n{filler}"


@pytest.fixture
def long_dir(tmp_path):
    pairs = [
        make_pair(
            anchor_id=f"l{i}",
            label="AB"[i % 2],
            context_a_text=long_trace("1 passed in 0.31s"),
            context_b_text=long_trace("1 failed in 0.31s"),
        )
        for i in range(3)
    ]
    return write_pairs(tmp_path / "long", pairs + [make_pair(anchor_id="short")])


def user_text(prompt):
    return next(m["content"] for m in prompt if m["role"] == "user")


def open_image(data):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize("folder", ["coding_dir", "vision_dir", "mixed_dir"])
def test_verl_parquet_follows_rlhfdataset(folder, request, tmp_path, tok):
    src = request.getfixturevalue(folder)
    stats = export_pairs(src, tmp_path / "train.parquet", cfg("verl", tok, split="train"))
    table = pq.read_table(tmp_path / "train.parquet")
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info"} <= set(table.column_names)
    rows = table.to_pylist()
    assert len(rows) == stats["exported"] == stats["inputs"]
    for index, row in enumerate(rows):
        assert isinstance(row["prompt"], list) and row["prompt"][-1]["role"] == "user"
        assert row["reward_model"]["style"] == "rule" and row["reward_model"]["ground_truth"] in ("A", "B")
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
def test_easyr1_jsonl_follows_its_dataset_reader(folder, request, tmp_path, tok):
    src = request.getfixturevalue(folder)
    out = tmp_path / "easyr1" / "train.jsonl"
    report = export_pairs(src, out, cfg("easyr1", tok))
    rows = read_jsonl(out)
    for row in rows:
        assert isinstance(row["problem"], str) and row["answer"] in ("A", "B")
        images = row.get("images", [])
        assert row["problem"].count("<image>") == len(images)  # EasyR1 splits `problem` on <image>
        for rel in images:  # paths relative to data.image_dir = the JSONL's folder
            assert not rel.startswith("/") and open_image((out.parent / rel).read_bytes()).size == (16, 16)
    has_vision = folder != "coding_dir"
    assert all("images" in r for r in rows) == has_vision  # no images key at all for text-only data
    assert (
        f"data.image_dir={out.parent.resolve()}" in report["settings"]
        and "data.prompt_key=problem" in report["settings"]
    )


def test_skyrl_rows_carry_the_env_that_scores_them(coding_dir, tmp_path, tok):
    report = export_pairs(coding_dir, tmp_path / "s.jsonl", cfg("skyrl", tok))
    rows = read_jsonl(tmp_path / "s.jsonl")
    assert len(rows) == 4 and report["rejected"] == {}
    for row in rows:
        assert row["prompt"][-1] == {"role": "user", "content": row["prompt"][-1]["content"]}
        assert row["correct_answer"] == row["reward_spec"]["ground_truth"] and row["reward_spec"]["method"] == "rule"
        assert row["env_class"] == "ctxdata_selection" and "<image>" not in row["prompt"][-1]["content"]
    assert (tmp_path / "skyrl_env.py").is_file() and "environment.env_class=ctxdata_selection" in report["settings"]


def test_skyrl_vision_puts_images_in_image_url_parts(vision_dir, tmp_path, tok):
    import base64

    report = export_pairs(vision_dir, tmp_path / "v.jsonl", cfg("skyrl", tok))
    rows = read_jsonl(tmp_path / "v.jsonl")
    assert len(rows) == report["exported"] == 3 and (tmp_path / "v.jsonl").stat().st_size > 0
    for row in rows:
        parts = row["prompt"][-1]["content"]
        urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
        assert open_image(base64.b64decode(urls[0].split(",", 1)[1])).getpixel((0, 0)) == (200, 30, 30)  # A first
        text = " ".join(p["text"] for p in parts if p["type"] == "text")
        assert text.index("Context A") < text.index("Context B") and "Output A or B directly." in text
    assert "generator.vision_language_generator=true" in report["settings"]


@pytest.mark.parametrize("folder", ["coding_dir", "mixed_dir"])
def test_trl_folder_is_a_conversational_prompt_dataset(folder, request, tmp_path, tok):
    datasets = pytest.importorskip("datasets")
    src = request.getfixturevalue(folder)
    export_pairs(src, tmp_path / "trl", cfg("trl", tok))
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
    assert (tmp_path / "trl_reward.py").is_file() and (tmp_path / "trl.export.json").is_file()


def test_contextrl_paper_writes_both_ca_files(mixed_dir, tmp_path, tok):
    report = export_pairs(mixed_dir, tmp_path / "paper", cfg("contextrl-paper", tok))
    agentic = read_jsonl(tmp_path / "paper" / "agentic.jsonl")
    multimodal = read_jsonl(tmp_path / "paper" / "multimodal.jsonl")
    assert len(agentic) == 1 and len(multimodal) == 1 and report["exported"] == 2
    # SkyRL CA reader (ct_dataset.py): `prompt` is one string it wraps in a user message; answer in A/B
    assert isinstance(agentic[0]["prompt"], str) and agentic[0]["correct_answer"] in ("A", "B")
    assert "1 passed" in agentic[0]["prompt"] and "1 failed" in agentic[0]["prompt"]  # both contexts inside
    # EasyR1 fork (choose_image rows): > 1 image, answer A/B, the instruction appended once by the fork
    row = multimodal[0]
    assert len(row["images"]) == 2 and row["answer"] == "B" and row["problem"].count("<image>") == 2
    assert all((tmp_path / "paper" / rel).is_file() for rel in row["images"])
    assert (row["problem"] + FORK_SUFFIX).count("Output A or B directly.") == 1
    assert not any(k in report["files"] for k in ("scorer",))  # the CA losses read the A/B logits themselves


def test_contextrl_paper_coding_only_writes_no_stale_multimodal_file(coding_dir, mixed_dir, tmp_path, tok):
    export_pairs(mixed_dir, tmp_path / "paper", cfg("contextrl-paper", tok))
    report = export_pairs(coding_dir, tmp_path / "paper", cfg("contextrl-paper", tok))
    assert not (tmp_path / "paper" / "multimodal.jsonl").exists() and set(report["files"]) == {"agentic"}


def test_without_a_limit_rows_stay_whole_and_the_length_to_set_is_their_max(long_dir, tmp_path, tok):
    report = export_pairs(long_dir, tmp_path / "v.parquet", cfg("verl", tok))
    assert report["exported"] == 4 and report["trimmed_rows"] == 0
    assert report["max_prompt_length"] == report["prompt_tokens"]["max"] > 1000
    assert f"data.max_prompt_length={report['max_prompt_length']}" in report["settings"]


def test_rows_are_fitted_under_the_limit_by_trimming_both_contexts(long_dir, tmp_path, tok):
    from ctxdata.tokens import TokenCounter

    limit = 600
    report = export_pairs(long_dir, tmp_path / "v.parquet", cfg("verl", tok, max_prompt_length=limit))
    assert report["inputs"] == report["exported"] + sum(report["rejected"].values()) == 4
    assert report["trimmed_rows"] == 3 and report["prompt_tokens"]["max"] <= limit
    counter = TokenCounter(tok)
    for row in pq.read_table(tmp_path / "v.parquet").to_pylist():
        assert len(counter.chat_ids(row["prompt"])) <= limit  # re-measured independently of the export
        text = user_text(row["prompt"])
        if "tokens trimmed" in text:  # the decisive lines survive: they are where the contexts differ
            a, b = text.split("Context B:")
            assert "1 passed" in a and "1 failed" in b
            assert a.count("tokens trimmed") == b.count("tokens trimmed")


def test_a_row_that_cannot_fit_is_rejected_with_a_reason(tmp_path, tok):
    huge_query = make_pair(anchor_id="q", query="why " * 400)  # the fixed part alone is over the limit
    src = write_pairs(tmp_path / "q", [huge_query, make_pair(anchor_id="ok")])
    report = export_pairs(src, tmp_path / "v.parquet", cfg("verl", tok, max_prompt_length=200))
    assert report["exported"] == 1 and report["rejected"] == {
        "prompt over max_prompt_length even with both contexts trimmed": 1
    }
    sidecar = json.loads((tmp_path / "v.export.json").read_text())
    assert sidecar["rejects"][0]["reason"].startswith("prompt over") and sidecar["inputs"] == 2


def test_vision_rows_over_the_limit_are_rejected_not_cut(vision_dir, tmp_path, tok):
    with pytest.raises(CtxdataError, match="all 3 pairs were rejected.*no text context to trim"):
        export_pairs(vision_dir, tmp_path / "v.parquet", cfg("verl", tok, max_prompt_length=64))
    assert not (tmp_path / "v.parquet").exists()


def test_broken_images_are_rejected_with_a_reason(tmp_path, tok):
    bad = make_pair(domain="vision", anchor_id="bad", context_a_image=image_cell(b"not a png"))
    src = write_pairs(tmp_path / "bad", [bad, make_pair(domain="vision", anchor_id="ok")])
    for target in ("verl", "skyrl"):
        stats = export_pairs(src, tmp_path / f"{target}.out", cfg(target, tok))
        assert stats["exported"] == 1 and stats["rejected"] == {"image does not decode": 1}


def test_zero_rows_is_an_error_with_exit_code_1(tmp_path, tok):
    from ctxdata.cli.main import app

    src = write_pairs(
        tmp_path / "bad", [make_pair(domain="vision", anchor_id="bad", context_a_image=image_cell(b"xx"))]
    )
    result = CliRunner().invoke(
        app, ["export", str(src), "--to", "skyrl", "--out", str(tmp_path / "x.jsonl"), "--tokenizer", tok]
    )
    assert result.exit_code == 1 and "all 1 pairs were rejected (image does not decode: 1)" in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_config_rejects_bad_combinations():
    with pytest.raises(ConfigError, match="verl, easyr1, skyrl, trl, contextrl-paper"):
        ExportConfig("openrlhf")
    with pytest.raises(ConfigError, match="does not apply to easyr1"):
        ExportConfig("easyr1", system_prompt=True)
    with pytest.raises(ConfigError, match=">= 64"):
        ExportConfig("verl", max_prompt_length=10)


def test_percentile_is_nearest_rank():
    assert percentile(list(range(1, 101)), 95) == 95 and percentile([7], 95) == 7 and percentile([1, 2], 95) == 2


@pytest.mark.parametrize("target", list(SCORERS))
def test_shipped_scorers_run_without_ctxdata_and_read_every_answer_form(target, coding_dir, tmp_path, tok):
    """Each scorer file is imported in a fresh interpreter (-I: no PYTHONPATH) where importing ctxdata fails."""
    out = tmp_path / "out" / ("data" if target == "trl" else "data.file")
    export_pairs(coding_dir, out, cfg(target, tok))
    scorer = tmp_path / "out" / SCORERS[target]
    calls = {
        "verl": "[m.compute_score('ctxdata/contrastive-context', text, 'A', {}) for text, _ in answers]",
        "easyr1": "[s['overall'] for s in m.compute_score("
        "[{'response': t, 'response_length': 1, 'ground_truth': 'A'} for t, _ in answers])]",
        "skyrl": "[m.compute_score(text, 'A') for text, _ in answers]",
        "trl": "m.selection_reward(None, [[{'role': 'assistant', 'content': t}] for t, _ in answers], ['A'] * 12)",
    }
    code = (
        "import importlib.util, json, sys\n"
        "sys.modules['ctxdata'] = None  # any `import ctxdata` in the scorer now fails\n"
        f"spec = importlib.util.spec_from_file_location('scorer', {str(scorer)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"answers = {ANSWERS!r}\n"
        f"print(json.dumps({{'letters': [m.chosen_letter(t) for t, _ in answers], 'scores': {calls[target]}}}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["letters"] == [letter for _, letter in ANSWERS]
    assert got["scores"] == [1.0 if letter == "A" else 0.0 for _, letter in ANSWERS]


def test_the_trl_reward_in_ctxdata_agrees_on_the_answer_forms():
    """`ctxdata.train.rewards.multiple_choice` (the native trainer's) reads the five listed forms alike."""
    from ctxdata.train.rewards import multiple_choice

    forms = ["A", " A", "Context A", "<answer>A</answer>", "\\boxed{A}"]
    assert multiple_choice(None, forms, answer=["A"] * 5) == [1.0] * 5
    assert multiple_choice(None, forms, answer=["B"] * 5) == [0.0] * 5


def test_cli_export_prints_lengths_and_settings(coding_dir, tmp_path, tok):
    from ctxdata.cli.export import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    help_text = CliRunner().invoke(app, ["export", "--help"], terminal_width=300).output
    assert all(url.split("/")[2] in help_text for url in DOCS.values()) and all(name in help_text for name in TARGETS)
    result = CliRunner().invoke(
        app,
        [
            "export",
            str(coding_dir),
            "--to",
            "skyrl",
            "--out",
            str(tmp_path / "x.jsonl"),
            "--limit",
            "2",
            "--tokenizer",
            tok,
        ],
        terminal_width=300,
    )
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 2
    report = json.loads((tmp_path / "x.export.json").read_text())
    assert f"max {report['prompt_tokens']['max']}, p95 {report['prompt_tokens']['p95']}" in result.output
    assert f"trainer.max_prompt_length={report['max_prompt_length']}" in result.output


def test_image_tokens_count_toward_vision_prompts_and_the_limit(vision_dir, tmp_path, tok):
    text_only = export_pairs(vision_dir, tmp_path / "a.parquet", cfg("verl", tok))
    assert "image_tokens_note" in text_only
    with_images = export_pairs(vision_dir, tmp_path / "b.parquet", cfg("verl", tok, image_tokens=100))
    assert with_images["prompt_tokens"]["max"] == text_only["prompt_tokens"]["max"] + 200
    assert "image_tokens_note" not in with_images
    limit = text_only["prompt_tokens"]["max"] + 150  # room for the text, not for two 100-token images
    with pytest.raises(CtxdataError, match="no text context to trim"):
        export_pairs(vision_dir, tmp_path / "c.parquet", cfg("verl", tok, image_tokens=100, max_prompt_length=limit))
