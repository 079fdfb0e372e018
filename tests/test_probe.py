"""The contrastive context probe on a tiny random Llama: CI math, breakdowns, a rigged model, CLI."""

from __future__ import annotations

import json

import pytest
import typer
from conftest import make_pair
from typer.testing import CliRunner

from ctxdata.errors import ConfigError
from ctxdata.io import PairOutput
from ctxdata.pipeline import RunContext
from ctxdata.train.probe import (
    PairResult,
    ProbeConfig,
    comparison_tables,
    load_probe_model,
    parse_letter,
    probe_rows,
    run_probe,
    summarize,
    wilson_interval,
)

torch = pytest.importorskip("torch")


def write_pairs(path, pairs):
    out = PairOutput(path, {"test": str(path)}, command="test")
    out.write_task(0, [p.to_row() for p in pairs], RunContext())
    out.finalize(1, inputs=len(pairs), global_ctx=RunContext())
    return path


def coding_pairs(n=10):
    methods = ["condition:function", "synth:returncode"]
    return [make_pair(label="AB"[i % 3 == 0], anchor_id=f"a{i}", method=methods[i % 2]) for i in range(n)]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from ctxdata.train.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")


def rigged_to_say_a(src, dest):
    """A tiny Llama whose answer-position logits always favour "A": the layers write nothing to the
    residual stream, so the last hidden state depends only on the last prompt token, and the (tied)
    embeddings of the A variants point along it and the B variants against it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ctxdata.train.losses import letter_token_ids
    from ctxdata.train.probe_model import prompt_text

    model = AutoModelForCausalLM.from_pretrained(src)
    tok = AutoTokenizer.from_pretrained(src)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        ids = tok(prompt_text(tok, make_pair().to_row()), return_tensors="pt", add_special_tokens=False)
        h = model(**ids, output_hidden_states=True).hidden_states[-1][0, -1]  # [H], after the final norm
        emb = model.get_input_embeddings().weight
        letters = letter_token_ids(tok)
        for i in letters["A"]:
            emb[i] = h / h.norm()
        for i in letters["B"]:
            emb[i] = -h / h.norm()
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def test_wilson_interval_matches_the_textbook_values():
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_summary_from_a_hand_made_delta_list():
    deltas = [0.5, -0.2, 1.0, 0.0, 2.0, -1.0]  # Delta == 0 is a tie, and a tie is wrong
    methods = ["m1", "m1", "m2", "m2", "m2", "m1"]
    results = [
        PairResult(f"p{i}", m, "coding", "A", d, None, None, None, d > 0, None) for i, (d, m) in enumerate(zip(deltas, methods))
    ]
    s = summarize(results, {"too long": 2})
    assert s["overall"]["correct"] == 3 and s["overall"]["n"] == 6
    assert s["overall"]["accuracy"] == pytest.approx(0.5)
    assert (s["overall"]["ci_low"], s["overall"]["ci_high"]) == pytest.approx(wilson_interval(3, 6))
    assert s["by_method"]["m1"]["correct"] == 1 and s["by_method"]["m2"]["correct"] == 2
    assert s["mean_delta"] == pytest.approx(sum(deltas) / 6)
    assert s["skipped"] == {"too long": 2} and s["generate"] is None


def test_parse_letter_takes_the_first_standalone_letter():
    assert parse_letter(" B.") == "B"
    assert parse_letter("Answer: A, not B") == "A"
    assert parse_letter("Because ABC") is None
    assert parse_letter("") is None


def test_config_rejects_bad_modes():
    with pytest.raises(ConfigError, match="logits, generate, both"):
        ProbeConfig(mode="vote")
    with pytest.raises(ConfigError):
        ProbeConfig(limit=0)


def test_model_forced_to_prefer_a_gets_exactly_the_a_fraction(tiny_llama, tmp_path):
    pairs = write_pairs(tmp_path / "pairs", coding_pairs(10))
    rigged = rigged_to_say_a(tiny_llama, tmp_path / "says-a")
    summary = run_probe([pairs], [str(rigged)], ProbeConfig(batch_size=4), out=tmp_path / "r.jsonl")[str(rigged)]
    n_a = sum(p.label == "A" for p in coding_pairs(10))
    assert 0 < n_a < 10
    assert summary["overall"]["correct"] == n_a
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert all((r["delta"] > 0) == (r["label"] == "A") for r in lines)
    assert all(r["correct"] == (r["label"] == "A") and 0 < r["p_correct"] < 1 for r in lines)


def test_results_do_not_depend_on_batching(tiny_llama):
    rows = [p.to_row() for p in coding_pairs(6)]
    rows[2]["context_a_text"] += "\n$ ls -la src/ tests/ docs/\nREADME.md app.py" * 3  # uneven lengths -> padding
    model = load_probe_model(str(tiny_llama))
    one, _ = probe_rows(model, rows, ProbeConfig(batch_size=1))
    four, _ = probe_rows(model, rows, ProbeConfig(batch_size=4))
    assert [r.pair_id for r in one] == [r["pair_id"] for r in rows]
    assert [r.delta for r in one] == pytest.approx([r.delta for r in four], abs=1e-4)


def test_generate_mode_and_skips(tiny_llama):
    rows = [p.to_row() for p in coding_pairs(3)] + [make_pair(domain="vision").to_row()]
    model = load_probe_model(str(tiny_llama))
    results, skipped = probe_rows(model, rows, ProbeConfig(mode="both", max_new_tokens=3))
    assert skipped == {"vision pair on a text-only model": 1}
    assert len(results) == 3
    assert all(r.generated is not None and r.correct_generate == (r.generated_letter == r.label) for r in results)
    long_rows, long_skip = probe_rows(model, rows[:1], ProbeConfig(max_prompt_tokens=8))
    assert long_rows == [] and long_skip == {"prompt longer than max_prompt_tokens": 1}


def test_several_models_in_one_table(tiny_llama, tmp_path):
    pairs = write_pairs(tmp_path / "pairs", coding_pairs(6))
    rigged = rigged_to_say_a(tiny_llama, tmp_path / "says-a")
    summaries = run_probe([pairs], [str(tiny_llama), str(rigged)], ProbeConfig(limit=5))
    assert list(summaries) == [str(tiny_llama), str(rigged)]
    assert all(s["overall"]["n"] == 5 for s in summaries.values())
    (title, columns, rows), by_method, by_domain = comparison_tables(summaries)
    assert [r[0] for r in rows] == list(summaries) and columns[2] == "logits acc"
    assert by_method[1] == ["method", str(tiny_llama), str(rigged)]
    assert {r[0] for r in by_method[2]} == {"condition:function", "synth:returncode"}


def test_cli_probe_writes_results_and_summary(tiny_llama, tmp_path):
    from ctxdata.cli.probe import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps `probe` a named subcommand
    pairs = write_pairs(tmp_path / "pairs", coding_pairs(4))
    out = tmp_path / "probe.jsonl"
    result = CliRunner().invoke(app, ["probe", "--pairs", str(pairs), "--model", str(tiny_llama), "--mode", "both", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 4
    summary = json.loads((tmp_path / "probe.summary.json").read_text())
    assert summary["models"][str(tiny_llama)]["overall"]["n"] == 4 and summary["config"]["mode"] == "both"
    bad = CliRunner().invoke(app, ["probe", "--pairs", str(pairs), "--model", str(tmp_path / "missing")])
    assert bad.exit_code != 0


def test_prefill_moves_the_answer_position(tiny_llama):
    from ctxdata.train.probe_model import prompt_text

    rows = [p.to_row() for p in coding_pairs(2)]
    model = load_probe_model(str(tiny_llama))
    assert prompt_text(model.tokenizer, rows[0], prefill="Context").endswith("assistant\nContext")
    plain, _ = probe_rows(model, rows, ProbeConfig())
    filled, _ = probe_rows(model, rows, ProbeConfig(prefill="Context"))
    assert [r.delta for r in plain] != pytest.approx([r.delta for r in filled])


def test_both_orders_cancels_a_pure_letter_preference(tiny_llama, tmp_path):
    """The always-A model scores the share of A labels raw, but no pair when both orders are averaged."""
    pairs = write_pairs(tmp_path / "pairs", coding_pairs(10))
    rigged = rigged_to_say_a(tiny_llama, tmp_path / "says-a")
    summary = run_probe([pairs], [str(rigged)], ProbeConfig(batch_size=4, both_orders=True), out=tmp_path / "r.jsonl")[str(rigged)]
    n_a = sum(p.label == "A" for p in coding_pairs(10))
    assert 0 < n_a < 10
    assert summary["overall"]["correct"] == n_a  # the raw accuracy is the letter prior
    assert summary["share_a"] == 1.0
    assert summary["both_orders"]["n"] == 10 and summary["both_orders"]["correct"] == 0  # mean Delta == 0: a tie is wrong
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert all(r["delta"] == pytest.approx(-r["delta_swapped"], abs=1e-4) and r["correct_both_orders"] is False for r in lines)


def test_both_orders_counts_a_content_preference(tiny_llama):
    """Delta and Delta_swapped both favour the anchor -> right; a letter bias smaller than the content signal stays right."""
    from ctxdata.train.probe import _result

    row = coding_pairs(1)[0].to_row()
    assert _result(row, 1.5, None, 0.5).correct_both_orders is True  # content +1.0, letter bias +-0.5
    assert _result(row, 2.0, None, -1.0).correct_both_orders is True  # letter bias dominates one order
    assert _result(row, 1.0, None, -3.0).correct_both_orders is False
    assert _result(row, 1.0, None, None).correct_both_orders is None
    with pytest.raises(ConfigError, match="both_orders"):
        ProbeConfig(mode="generate", both_orders=True)
