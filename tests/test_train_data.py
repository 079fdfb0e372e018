"""Training data: pair folders -> selection examples, the per-step sampler, task rows and their errors."""

import json

import pytest

from conftest import make_pair
from ctxdata.errors import CtxdataError
from ctxdata.io import PairOutput
from ctxdata.engine import run_tasks
from ctxdata.pipeline import RunContext
from ctxdata.train.data import (
    PairSampler,
    load_selection_examples,
    load_task_data,
    selection_rl_rows,
    sft_examples,
)


def write_pairs(out, pairs):
    output = PairOutput(out, {"seed": 0}, command="test")
    run_tasks(output, [pairs], [])
    output.finalize(1, inputs=len(pairs), global_ctx=RunContext())
    return out


def test_pairs_become_selection_examples(tmp_path):
    pairs = [make_pair(query=f"q{i}", label="AB"[i % 2]) for i in range(4)] + [make_pair(domain="vision", label="B")]
    folder = write_pairs(tmp_path / "p", pairs)
    examples = load_selection_examples([folder])
    assert [e.correct for e in examples] == ["A", "B", "A", "B", "B"]
    assert [e.wrong for e in examples] == ["B", "A", "B", "A", "A"]
    assert "Context A:\n$ pytest\n1 passed" in examples[0].messages[-1]["content"]
    assert examples[1].anchor_context == "$ pytest\n1 failed"  # label B -> context B is the anchor
    assert len(examples[4].images) == 2 and examples[4].images[0]["bytes"]
    sft = sft_examples(examples)
    assert sft[1]["target"] == examples[1].answer and "1 failed" in sft[1]["prompt"][0]["content"]
    assert sft[4]["images"] == [examples[4].images[1]]
    rl = selection_rl_rows(examples)
    assert rl[1]["answer"] == "B" and rl[1]["reward_fn"] == "multiple_choice" and "images" in rl[4]


def test_empty_pair_folder_is_an_error(tmp_path):
    with pytest.raises(CtxdataError, match="no pairs"):
        load_selection_examples([write_pairs(tmp_path / "e", [])])


def test_sampler_is_fresh_per_step_and_reproducible(tmp_path):
    examples = load_selection_examples([write_pairs(tmp_path / "p", [make_pair(query=f"q{i}") for i in range(20)])])
    sampler = PairSampler(examples, 4, seed=3)
    b0, b1 = sampler.batch(0), sampler.batch(1)
    assert len(b0) == 4 and len({e.pair_id for e in b0}) == 4
    assert [e.pair_id for e in b0] != [e.pair_id for e in b1]
    again = PairSampler(examples, 4, seed=3)
    assert [e.pair_id for e in again.batch(1)] == [e.pair_id for e in b1]
    assert len(PairSampler(examples[:2], 5, seed=0).batch(0)) == 5  # with replacement when the pool is small


def test_task_data_jsonl_parquet_and_errors(tmp_path):
    good = tmp_path / "t.jsonl"
    good.write_text(json.dumps({"prompt": "2+2?", "answer": "4"}) + "\n\n" + json.dumps({"prompt": [{"role": "user", "content": "hi"}], "answer": "x", "extra": 1}) + "\n")
    rows = load_task_data(good)
    assert len(rows) == 2 and rows[1]["extra"] == 1
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"prompt": "a", "answer": "b"}]), tmp_path / "t.parquet")
    assert load_task_data(tmp_path / "t.parquet") == [{"prompt": "a", "answer": "b"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "ok", "answer": "1"}) + "\n" + json.dumps({"prompt": "no answer"}) + "\n")
    with pytest.raises(CtxdataError, match=r"bad\.jsonl:2: missing `answer`"):
        load_task_data(bad)
    bad.write_text("{not json\n")
    with pytest.raises(CtxdataError, match=r"bad\.jsonl:1: not valid JSON"):
        load_task_data(bad)
    bad.write_text(json.dumps({"prompt": [{"text": "x"}], "answer": "1"}) + "\n")
    with pytest.raises(CtxdataError, match="prompt"):
        load_task_data(bad)
    with pytest.raises(CtxdataError, match="does not exist"):
        load_task_data(tmp_path / "nope.jsonl")
    bad.write_bytes(json.dumps({"prompt": "ok", "answer": "1"}).encode() + b"\n\xff\xfe caf\xe9\n")
    with pytest.raises(CtxdataError, match=r"bad\.jsonl:2: not UTF-8 \(byte 0xff"):
        load_task_data(bad)
    bad.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(CtxdataError, match=r"bad\.jsonl:1: not valid JSON \(JSON nested deeper"):
        load_task_data(bad)


def test_swapped_twin_moves_the_anchor_and_its_letter(tmp_path):
    from ctxdata.train.data import swap_contexts

    row = make_pair(label="A", context_a_text="$ pytest\n1 passed", context_b_text="$ pytest\n1 failed").to_row()
    twin = swap_contexts(row)
    assert (twin["label"], twin["context_a_text"], twin["context_b_text"]) == ("B", row["context_b_text"], row["context_a_text"])
    examples = load_selection_examples([write_pairs(tmp_path / "p", [make_pair(label="A")])])
    ex = examples[0]
    assert (ex.correct, ex.swapped.correct, ex.swapped.wrong) == ("A", "B", "A")
    assert ex.swapped.anchor_context == ex.anchor_context and ex.swapped.swapped is None
    a, b = ex.messages[-1]["content"], ex.swapped.messages[-1]["content"]
    assert a.index("1 passed") < a.index("Context B") < b.index("1 passed")


def test_both_orders_batches_hold_each_pair_twice_with_half_the_letters_a(tmp_path):
    pairs = [make_pair(query=f"q{i}", label="A") for i in range(10)]  # every stored label is A: the letter alone would win
    examples = load_selection_examples([write_pairs(tmp_path / "p", pairs)])
    sampler = PairSampler(examples, 6, seed=1, both_orders=True)
    for step in range(3):
        batch = sampler.batch(step)
        assert len(batch) == 6 and [e.correct for e in batch] == ["A", "B"] * 3
        assert [e.pair_id for e in batch[::2]] == [e.pair_id for e in batch[1::2]] and len({e.pair_id for e in batch}) == 3
    assert [e.pair_id for e in sampler.batch(2)] == [e.pair_id for e in PairSampler(examples, 6, seed=1, both_orders=True).batch(2)]
    with pytest.raises(CtxdataError, match="even"):
        PairSampler(examples, 5, both_orders=True)


def test_swapped_twin_of_a_vision_pair_swaps_the_images(tmp_path):
    examples = load_selection_examples([write_pairs(tmp_path / "p", [make_pair(domain="vision", label="B")])])
    ex = examples[0]
    assert ex.swapped.images == [ex.images[1], ex.images[0]] and ex.swapped.correct == "A"
    assert ex.swapped.anchor_context == ex.anchor_context == ex.images[1]
