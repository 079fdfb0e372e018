"""build-vision end to end: the demo, retrieval on real photos, bad pools, resume, determinism, light imports."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ctxdata.cli.main import app
from ctxdata.io import iter_rows, read_report
from ctxdata.vision.build import VisionConfig, build_vision


def with_out(config: VisionConfig, out) -> VisionConfig:
    return dataclasses.replace(config, out=str(out))


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("pairs-*.arrow"))}


def assert_inputs_balance(out: Path, report: dict) -> None:
    pool = next(s for s in report["stages"] if s["name"] == "pool")
    assert report["inputs"] == pool["out"] + report["inputs_rejected"]
    lines = (out / "rejects.jsonl").read_text().splitlines()
    assert len(lines) == report["inputs_rejected"] + report["candidates_rejected"]



@pytest.mark.slow
def test_demo_gives_readable_balanced_pairs_of_every_method(demo_out):
    datasets = pytest.importorskip("datasets")
    out, output = demo_out
    ds = datasets.load_from_disk(str(out))
    assert isinstance(ds.features["context_a_image"], datasets.Image)
    row = ds[0]
    assert row["context_a_image"].mode == "RGB" and row["domain"] == "vision"
    methods = set(ds["method"])
    assert methods == {"edit:procedural", "edit:classical", "retrieval:faiss"}
    labels = ds["label"]
    assert abs(labels.count("A") - labels.count("B")) <= max(2, len(labels) // 10)
    report = read_report(out)
    assert report["pairs"] == len(ds) > 20
    assert_inputs_balance(out, report)
    assert {s["strategy"] for s in report["strategies"]} == {"edit", "retrieval"}
    assert "per strategy" in output and "rejected by reason" in output
    rows = list(iter_rows(out, ["checks", "meta", "similarity", "answer", "answer_confounder", "method"]))
    for r in rows:
        assert r["answer"] != r["answer_confounder"]
        checks = {c["name"]: c for c in json.loads(r["checks"])}
        assert all(c["passed"] for c in checks.values())
        assert {"images_not_blank", "not_duplicate", "similarity_band"} <= set(checks)
        assert json.loads(r["meta"])["question_type"]
        # the band no longer caps at 0.995; below 0.9 only a pixel near-copy passes
        assert r["similarity"] >= 0.9 or "near-copy" in checks["similarity_band"]["detail"]
    # roles: the edited image is the anchor in 40-60% of the edit pairs, and meta says which one it is
    edited = [json.loads(r["meta"])["edited"] for r in rows if r["method"].startswith("edit:")]
    assert set(edited) == {"anchor", "confounder"} and 0.4 <= edited.count("anchor") / len(edited) <= 0.6
    # embedder-blind pairs (cosine >= 0.995) are kept, flagged and counted per strategy
    blind = [r for r in rows if json.loads(r["meta"])["embedder_blind"]]
    assert blind and all(r["similarity"] >= 0.995 for r in blind)
    assert sum(s["embedder_blind"] for s in report["strategies"]) == len(blind) and "embedder-blind" in output


def _photo_pool_with_edited_copies(root: Path) -> int:
    """Ten scikit-image photos + one classically edited copy each, same question, different answers."""
    skdata = pytest.importorskip("skimage.data")
    from ctxdata.vision.editors.classical import ClassicalEditor
    from ctxdata.vision.pool import QARecord
    from ctxdata.vision.templates import EditPlan

    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "immunohistochemistry", "colorwheel", "hubble_deep_field", "clock"]
    ops = [("recolor", {"target": "blue"}), ("remove", {}), ("duplicate", {}), ("text", {"text": "42"})]
    editor, lines = ClassicalEditor(), []
    for n, name in enumerate(names):
        img = Image.fromarray(getattr(skdata, name)()).convert("RGB")
        w, h = img.size
        box = [w // 3, h // 3, w // 3 + w // 6, h // 3 + h // 6]
        op, params = ops[n % len(ops)]
        copy = editor.edit(img, EditPlan(op, "", "edited", params), record=QARecord(name, "q", "a", "other", region=box), seed=n).image
        img.save(root / f"{name}.png")
        copy.save(root / f"{name}-edited.png")
        q = f"What is special about photo {name}?"
        lines += [{"image": f"{name}.png", "question": q, "answer": "original"}, {"image": f"{name}-edited.png", "question": q, "answer": "edited"}]
    (root / "qa.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return len(names)


@pytest.mark.slow
def test_retrieval_pairs_each_edited_photo_with_its_source(tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    n = _photo_pool_with_edited_copies(pool)
    # top-1 neighbour of each copy under the efficientnet embedder
    from ctxdata.vision.embed import make_embedder
    from ctxdata.vision.index import build_index

    files = sorted(p.name for p in pool.glob("*.png"))
    vectors = make_embedder("efficientnet-lite0").embed([Image.open(pool / f).convert("RGB") for f in files], progress=False)
    sims, ids = build_index(vectors, "flat").search(vectors, 2)
    copies = [i for i, f in enumerate(files) if f.endswith("-edited.png")]
    top1 = np.mean([files[ids[i, 1]] == files[i].replace("-edited", "") for i in copies])
    assert top1 >= 0.95, top1
    # and the pipeline mines exactly those pairs
    report = build_vision(with_out(VisionConfig(pool=str(pool), strategies=("retrieval",), sim_band=(0.5, 0.9999), index="hnsw"), tmp_path / "out"))
    pairs = {frozenset((r["anchor_id"], r["confounder_id"])) for r in iter_rows(tmp_path / "out", ["anchor_id", "confounder_id"])}
    expected = {frozenset((f, f.replace(".png", "-edited.png"))) for f in files if not f.endswith("-edited.png")}
    assert len(pairs & expected) >= 0.95 * n and pairs <= expected
    assert report["methods"] == {"retrieval:faiss": len(pairs)}


PLANTED_PHOTOS = ["astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass",
                  "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "retina", "rocket"]


def _photo_pool_with_planted_squares(root: Path) -> set[frozenset[str]]:
    """16 scikit-image photos, two copies each that differ only in a small square (red / blue) at a seeded
    spot, side 1/12 of the shorter side (0.7% of the pixels), asked the same question: the planted pairs."""
    skdata = pytest.importorskip("skimage.data")
    root.mkdir()
    rng, lines, planted = np.random.default_rng(0), [], set()
    for name in PLANTED_PHOTOS:
        arr = np.asarray(Image.fromarray(getattr(skdata, name)()).convert("RGB"))
        h, w = arr.shape[:2]
        side = min(w, h) // 12
        x0, y0 = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
        for colour, rgb in (("red", (220, 30, 30)), ("blue", (40, 70, 220))):
            copy = arr.copy()
            copy[y0:y0 + side, x0:x0 + side] = rgb
            Image.fromarray(copy).save(root / f"{name}-{colour}.png")
            lines.append({"image": f"{name}-{colour}.png", "question": "What colour is the small square?",
                          "answer": colour, "region": [x0, y0, x0 + side, y0 + side]})
        planted.add(frozenset((f"{name}-red.png", f"{name}-blue.png")))
    (root / "qa.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return planted


@pytest.mark.slow
def test_retrieval_finds_copies_that_differ_in_a_small_coloured_region(tmp_path):
    """The embedder puts such copies at cosine 0.87-1.0 (1.0 when the square lies outside its centre crop):
    a cosine cap hid the top of that range, the band's floor the bottom; pixels decide now."""
    planted = _photo_pool_with_planted_squares(tmp_path / "pool")

    def found(out: Path, **config) -> tuple[set, dict]:
        report = build_vision(VisionConfig(pool=str(tmp_path / "pool"), strategies=("retrieval",), out=str(out), **config))
        rows = iter_rows(out, ["anchor_id", "confounder_id"])
        return {frozenset((r["anchor_id"], r["confounder_id"])) for r in rows}, report

    pairs, report = found(tmp_path / "new")
    assert len(pairs & planted) >= 0.9 * len(planted), sorted(map(sorted, planted - pairs))
    assert pairs <= planted  # the other photos are far apart (cosine < 0.5): nothing else pairs
    assert report["strategies"][1]["embedder_blind"] >= 1
    old, _ = found(tmp_path / "old", sim_band=(0.9, 0.995), near_copy=0.0)  # the band as it was
    assert len(old & planted) < 0.6 * len(planted)


def test_bad_image_pool_finishes_with_each_reason(tmp_path):
    from test_vision_pool import GOOD, encoded, noise, qa, write_pool

    pool = tmp_path / "pool"
    good = encoded(noise(), "PNG")
    files = {"ok.png": good, "ok2.png": encoded(noise(seed=5), "PNG"), "empty.png": b"", "corrupt.png": b"\x89PNG nope" * 9,
             "trunc.png": good[: len(good) // 2], "bomb.png": encoded(Image.new("L", (1100, 1000)), "PNG"), "rgba.png": GOOD["rgba.png"]()}
    lines = [qa(f) for f in files] + [qa("gone.png"), qa("../escape.png"), "{oops", {"image": "ok.png"}]
    write_pool(pool, files, lines)
    report = build_vision(with_out(VisionConfig(pool=str(pool), max_pixels=1_000_000), tmp_path / "out"))
    reasons = {json.loads(line)["reason"] for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()}
    assert {"image_empty", "image_corrupt", "image_truncated", "decompression_bomb", "image_missing", "path_outside_pool",
            "invalid_json", "missing_field"} <= reasons
    assert report["inputs"] == len(lines) and report["inputs_rejected"] == 8
    assert_inputs_balance(tmp_path / "out", report)


class Killed(Exception):
    pass


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_shards_as_a_clean_run(tmp_path):
    config = VisionConfig(demo_families=3, shard_size=6, seed=11)
    killed = tmp_path / "killed"

    class DieAfterTwoTasks:  # a progress display that stops the run after two tasks were written
        def add_task(self, description, total=None):
            return description

        def update(self, task, advance=0):
            self.tasks = getattr(self, "tasks", 0) + (task.startswith("edit") and 1)
            if self.tasks == 2:
                raise Killed

    with pytest.raises(Killed):
        build_vision(with_out(config, killed), progress=DieAfterTwoTasks())
    assert len(list((killed / "_work").glob("task-*.done"))) == 2 and not (killed / "report.json").exists()
    first_shard = (killed / "pairs-00000.arrow").stat().st_mtime_ns
    build_vision(with_out(config, killed))
    assert (killed / "pairs-00000.arrow").stat().st_mtime_ns == first_shard  # finished work was skipped
    clean = tmp_path / "clean"
    build_vision(with_out(config, clean))
    assert shard_bytes(killed) == shard_bytes(clean) and shard_bytes(clean)
    assert read_report(killed)["pairs"] == read_report(clean)["pairs"]


def test_config_errors_are_clean_cli_messages(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["build-vision", "--out", str(tmp_path / "o"), "--strategy", "edit,magic"])
    assert bad.exit_code == 1 and "--strategy must be" in bad.output
    bad = runner.invoke(app, ["build-vision", "--out", str(tmp_path / "o"), "--sim-band", "0.9"])
    assert bad.exit_code == 1 and "two comma-separated numbers" in bad.output
    bad = runner.invoke(app, ["build-vision", "--out", str(tmp_path / "o"), "--edit-model", "sdxl", "--edit-model-path", str(tmp_path)])
    assert bad.exit_code == 1 and "model_index.json" in bad.output


def test_vision_modules_import_light():
    code = ("import sys, ctxdata.cli.vision, ctxdata.vision.build, ctxdata.vision.pool, ctxdata.vision.stages\n"
            "import ctxdata.vision.checks\n"
            "print([m for m in ('torch', 'cv2', 'diffusers', 'faiss', 'open_clip', 'transformers', 'datasets') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]"


def _square_pool(root: Path, colours: dict[str, tuple[int, int, int]], qa_rows: list[dict]) -> None:
    root.mkdir()
    for name, rgb in colours.items():
        img = Image.new("RGB", (96, 96), (235, 235, 235))
        img.paste(Image.new("RGB", (60, 60), rgb), (18, 18))
        img.save(root / name)
    (root / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa_rows))


@pytest.mark.slow
def test_answerer_supplies_the_neighbours_answer(tmp_path):
    from test_vision_checks import ColourVQAServer
    from http.server import HTTPServer
    import threading

    q = "What colour is the square?"
    _square_pool(tmp_path / "pool", {"red.png": (200, 30, 30), "blue.png": (30, 30, 200)},
                 [{"image": "red.png", "question": q, "answer": "red", "region": [18, 18, 78, 78]},
                  {"image": "blue.png", "question": "Is it a photo?", "answer": "no"}])
    server = HTTPServer(("127.0.0.1", 0), ColourVQAServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"openai:http://127.0.0.1:{server.server_address[1]}/v1"
        report = build_vision(with_out(VisionConfig(pool=str(tmp_path / "pool"), strategies=("retrieval",), sim_band=(0.3, 0.9999), answerer=url), tmp_path / "out"))
    finally:
        server.shutdown()
    rows = list(iter_rows(tmp_path / "out", ["anchor_id", "confounder_id", "answer", "answer_confounder", "meta"]))
    pair = next(r for r in rows if r["anchor_id"] == "red.png")
    assert (pair["confounder_id"], pair["answer"], pair["answer_confounder"]) == ("blue.png", "red", "Blue")
    assert json.loads(pair["meta"])["confounder_answered_by"] == url
    assert report["methods"]["retrieval:faiss"] == len(rows)


def test_blind_pairs_use_the_second_embedder(tmp_path, monkeypatch):
    import ctxdata.vision.embed as embed
    from ctxdata.pipeline import RunContext
    from ctxdata.vision.build import mine_retrieval
    from ctxdata.vision.pool import Pool

    pool = Pool()
    for n, answer in enumerate(["red", "blue", "green"]):
        pool.add(f"{n}.png", Image.new("RGB", (8, 8), (n, 0, 0)), question="What colour?", answer=answer, qtype="color")
    close = np.array([[1, 0], [0.99, 0.141], [0.98, 0.199]], np.float32)
    close /= np.linalg.norm(close, axis=1, keepdims=True)

    class Orthogonal:  # the "vision-only" embedder sees image 0 and 1 as different, 2 as a copy of 0
        def embed(self, images, progress=False):
            return np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]], np.float32)

    monkeypatch.setattr(embed, "make_embedder", lambda spec, **kw: Orthogonal())
    # near_copy off: these 8x8 near-black images are pixel near-copies, which would make them faiss candidates
    config = VisionConfig(blind_embedder="fake", blind_thresholds=(0.95, 0.6), sim_band=(0.999, 1.0), near_copy=0.0,
                          index="numpy")
    cands = mine_retrieval(pool, close, {f"{n}.png": n for n in range(3)}, config, None, RunContext())
    blind = [(c.record, c.confounder, c.method) for c in cands]
    assert blind == [(0, 1, "retrieval:blind"), (1, 2, "retrieval:blind")]


@pytest.mark.slow
def test_pipeline_script_writes_the_same_shards_as_the_cli(demo_out, tmp_path):
    repo = Path(__file__).parents[1]
    env = {**__import__("os").environ, "PYTHONPATH": str(repo), "CTXDATA_PROGRESS": "0"}
    subprocess.run([sys.executable, str(repo / "pipelines" / "vision_pairs.py"), str(tmp_path / "p")], check=True, env=env, capture_output=True)
    assert shard_bytes(tmp_path / "p") == shard_bytes(demo_out[0])


@pytest.mark.slow
def test_diffusion_editor_through_the_cli(tmp_path, editor="sdxl"):
    """The sdxl editor inside the whole build (instruct-pix2pix shares the path; see test_vision_edit)."""
    import random

    from ctxdata.vision import scene as sc
    from ctxdata.vision.editors.tiny import build_tiny_instruct_pix2pix, build_tiny_sdxl_inpaint

    model = (build_tiny_sdxl_inpaint if editor == "sdxl" else build_tiny_instruct_pix2pix)(tmp_path / "model")
    pool, lines = tmp_path / "pool", []
    pool.mkdir()
    for n in range(2):
        graph = sc.random_scene(random.Random(n), size=64, n_shapes=(2, 3))
        sc.render(graph).save(pool / f"s{n}.png")
        lines += [{"image": f"s{n}.png", **{k: r[k] for k in ("question", "answer", "type", "region")}} for r in sc.scene_questions(graph)]
    (pool / "qa.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build-vision", "--pool", str(pool), "--strategy", "edit", "--edit-model", editor, "--edit-model-path",
                                      str(model), "--edit-steps", "2", "--sim-band", "-1,1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = read_report(out)
    assert report["counters"]["edit:candidates"] == 4
    assert set(report["methods"]) == {f"edit:{editor}"} and report["pairs"] >= 1
    for r in iter_rows(out, ["checks", "method"]):
        names = {c["name"] for c in json.loads(r["checks"])}
        assert {"images_not_blank", "edit_changed", "edit_locality", "not_duplicate", "similarity_band"} <= names


def test_verifier_passes_and_difficulty_rejects_a_trivial_pair(tmp_path):
    from test_vision_checks import ColourVQAServer
    from http.server import HTTPServer
    import threading

    q = "What colour is the square?"
    _square_pool(tmp_path / "pool", {"red.png": (200, 30, 30), "blue.png": (30, 30, 200)},
                 [{"image": "red.png", "question": q, "answer": "red"}, {"image": "blue.png", "question": q, "answer": "blue"}])
    server = HTTPServer(("127.0.0.1", 0), ColourVQAServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"openai:http://127.0.0.1:{server.server_address[1]}/v1"
        config = VisionConfig(pool=str(tmp_path / "pool"), strategies=("retrieval",), sim_band=(0.3, 0.9999), verifier=url, difficulty=url)
        report = build_vision(with_out(config, tmp_path / "out"))
    finally:
        server.shutdown()
    # the judge answers both images right (verifier passes) every time: pass rate 1.0 > 0.63 -> too easy
    assert report["pairs"] == 0 and report["rejected"] == {"too_easy": 1}
    stages = {s["name"]: s for s in report["stages"]}
    assert stages["verify"]["in"] == 1 and stages["verify"]["dropped"] == {"too_easy": 1}
    reject = json.loads((tmp_path / "out" / "rejects.jsonl").read_text())
    assert reject["stage"] == "verify" and "pass rate 1.00 over 8 samples" in reject["detail"]


def test_index_path_is_saved_then_reloaded_and_checked(tmp_path):
    from ctxdata.errors import CtxdataError

    q = "What colour is the square?"
    rows = [{"image": "red.png", "question": q, "answer": "red"}, {"image": "blue.png", "question": q, "answer": "blue"}]
    _square_pool(tmp_path / "pool", {"red.png": (200, 30, 30), "blue.png": (30, 30, 200)}, rows)
    index = tmp_path / "pool.index"
    config = VisionConfig(pool=str(tmp_path / "pool"), strategies=("retrieval",), sim_band=(0.3, 0.9999), index="flat", index_path=str(index))
    first = build_vision(with_out(config, tmp_path / "a"))
    assert index.is_file() and first["pairs"] == 1
    stamp = index.stat().st_mtime_ns
    assert build_vision(with_out(config, tmp_path / "b"))["pairs"] == 1 and index.stat().st_mtime_ns == stamp  # reloaded, not rebuilt
    _square_pool(tmp_path / "other", {"a.png": (10, 200, 10), "b.png": (200, 200, 10), "c.png": (5, 5, 5)}, [rows[0] | {"image": n} for n in ("a.png", "b.png", "c.png")])
    with pytest.raises(CtxdataError, match="built from another pool"):
        build_vision(with_out(VisionConfig(**{**config.__dict__, "pool": str(tmp_path / "other")}), tmp_path / "c"))


def test_roles_are_balanced_per_edit_operation_and_seeded():
    from ctxdata.vision.build import Candidate, assign_roles
    from ctxdata.vision.templates import EditPlan

    def candidates():
        ops = ["remove"] * 10 + ["recolor"] * 7
        edits = [Candidate("edit", "edit:procedural", n, plan=EditPlan(op, "", "x")) for n, op in enumerate(ops)]
        return edits + [Candidate("retrieval", "retrieval:faiss", 100 + n, confounder=200 + n) for n in range(6)]

    first, again, other = candidates(), candidates(), candidates()
    assign_roles(first, seed=0)
    assign_roles(again, seed=0)
    assign_roles(other, seed=1)
    roles = [c.edited for c in first]
    assert roles == [c.edited for c in again] != [c.edited for c in other]
    assert roles[:10].count("anchor") == 5 and roles[10:17].count("anchor") in (3, 4)
    swapped = [c.record >= 200 for c in first[17:]]
    assert swapped.count(True) == 3
    assert all({c.record, c.confounder} == {100 + n, 200 + n} for n, c in enumerate(first[17:]))
