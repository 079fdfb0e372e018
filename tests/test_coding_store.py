import pytest

from ctxdata.coding.build import CodingBuildConfig, build_coding
from ctxdata.coding.store import ContextReader, ContextRef, ContextWriter, StoredContext
from ctxdata.coding.synth import SynthConfig, write_traces
from ctxdata.errors import CtxdataError


def make_context(**overrides):
    fields = dict(id="o__r-1", source="/x/o__r-1.traj.json", format="mini-swe-agent", issue="fix é", patch="+x\n", n_steps=3, text="## Step 1\n$ ls")
    return StoredContext(**{**fields, **overrides})


def test_write_then_read_round_trip(tmp_path):
    writer = ContextWriter(tmp_path, "slice-00000.bin")
    contexts = [make_context(id=f"o__r-{i}", text="x" * i) for i in range(5)]
    refs = [writer.add(c) for c in contexts]
    assert not (tmp_path / "slice-00000.bin").exists()  # visible only when complete
    writer.close()
    reader = ContextReader(tmp_path)
    assert [reader.get(r) for r in reversed(refs)] == contexts[::-1]


def test_a_missing_or_truncated_store_is_a_clear_error(tmp_path):
    writer = ContextWriter(tmp_path, "s.bin")
    ref = writer.add(make_context())
    writer.close()
    with pytest.raises(CtxdataError, match="truncated"):
        ContextReader(tmp_path).get(ContextRef(ref.file, ref.offset, ref.length + 10))
    with pytest.raises(CtxdataError, match="missing"):
        ContextReader(tmp_path).get(ContextRef("gone.bin", 0, 1))


def test_each_trajectory_is_parsed_once_even_in_several_pairs(tmp_path, monkeypatch):
    import ctxdata.coding.formats.mini_swe_agent as msa

    write_traces(SynthConfig(n=40, seed=5, kb=4), tmp_path / "traces", workers=1)
    calls = []
    parse = msa.MiniSweAgentReader.parse
    monkeypatch.setattr(msa.MiniSweAgentReader, "parse", lambda self, obj, *a, **k: calls.append(1) or parse(self, obj, *a, **k))
    report = build_coding(CodingBuildConfig(traces=[str(tmp_path / "traces")], out=str(tmp_path / "out"), max_pairs_per_trajectory=3))
    assert report["pairs"] > report["trajectories_signed"] // 2  # trajectories do appear in several pairs
    assert len(calls) == report["inputs"] == 40
    assert not (tmp_path / "out" / "_work" / "contexts").exists()  # the store is removed when the build ends
