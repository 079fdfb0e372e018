import json

import pytest
from typer.testing import CliRunner

from ctxdata.cli.main import app


@pytest.mark.slow
def test_quickstart_runs_end_to_end_on_a_tiny_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXDATA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "qs"
    result = CliRunner().invoke(app, ["quickstart", "--out", str(out), "--model", "tiny-llama", "--steps", "2",
                                      "--traces", "30", "--task-pairs", "16", "--probe-limit", "4"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "quickstart.json").read_text())
    assert summary["build-coding"]["pairs"] > 0 and summary["build-vision"]["pairs"] > 0
    assert summary["export verl"]["exported"] == summary["build-coding"]["pairs"]
    assert summary["export easyr1"]["exported"] == summary["build-vision"]["pairs"]
    assert summary["probe before"]["n"] == summary["probe after"]["n"] == 4
    before = json.loads((out / "probe-before.summary.json").read_text())["models"]["tiny-llama"]
    assert before["both_orders"]["n"] == before["overall"]["n"] == 4  # both the debiased and the raw accuracy are kept
    assert summary["probe before"]["both_orders"]["accuracy"] == before["both_orders"]["accuracy"]
    assert (out / "run-contextrl" / "metrics.jsonl").exists()
    assert "probe accuracy (both A/B orders) on held-out trace pairs: before" in result.output and "(n=4, never trained on;" in result.output
    assert_heldout_never_trained_on(out)
    import datasets

    assert len(datasets.load_from_disk(str(out / "pairs-vision"))) == summary["build-vision"]["pairs"]


def assert_heldout_never_trained_on(out):
    """No held-out pair, trace or task item reaches training: not as an L_CA pair, not in a task prompt."""
    from ctxdata.io import iter_rows
    from ctxdata.train.data import load_task_data

    cfg = json.loads((out / "run-contextrl" / "train_config.json").read_text())
    heldout = list(iter_rows(out / "task" / "heldout"))
    assert heldout
    trained_pairs = [row for folder in cfg["pairs"] for row in iter_rows(folder)]
    task_rows = load_task_data(cfg["task_data"])
    assert trained_pairs and task_rows
    assert not {r["pair_id"] for r in heldout} & {r["pair_id"] for r in trained_pairs}
    assert not {r["pair_id"] for r in heldout} & {r["pair_id"] for r in task_rows}
    trained_text = "\n".join([r["context_a_text"] + r["context_b_text"] for r in trained_pairs] + [r["prompt"] for r in task_rows])
    assert not [r["pair_id"] for r in heldout if r["context_a_text"] in trained_text or r["context_b_text"] in trained_text]


def _probe_result(both, raw, n=80):
    as_stats = lambda t: dict(zip(("accuracy", "ci_low", "ci_high"), t))  # noqa: E731
    return {"n": n, "both_orders": as_stats(both), "raw": as_stats(raw)}


def test_verdict_reads_the_both_orders_accuracy_and_prints_the_raw_one_beside_it():
    from ctxdata.quickstart import verdict

    before = _probe_result((0.5, 0.39, 0.61), (0.6, 0.49, 0.70))
    up = verdict(before, _probe_result((0.8, 0.70, 0.87), (0.6, 0.49, 0.70)), 20, easy=False)
    assert up.endswith("ContextRL raised it (the after-interval lies above the before-interval)") and "(n=80, never trained on;" in up
    assert "raw single-order accuracy 0.600 [0.490, 0.700] -> 0.600 [0.490, 0.700]" in up
    # a letter flip moves the raw accuracy, not the both-orders one: no separation
    flat = verdict(before, _probe_result((0.55, 0.44, 0.65), (0.9, 0.81, 0.95)), 20, easy=True)
    assert "(easy variant)" in flat and "no separation" in flat
    assert verdict(before, None, 20, easy=False).endswith("0.500 [0.390, 0.610] (n=80; raw single-order accuracy 0.600 [0.490, 0.700])")
