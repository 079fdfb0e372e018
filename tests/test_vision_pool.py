"""Pools: every image format decodes to upright RGB; every bad row becomes a reject with its reason."""

from __future__ import annotations

import io
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from ctxdata.errors import CtxdataError
from ctxdata.pipeline import RunContext
from ctxdata.vision.images import ImageRejected, decode_image, png_bytes
from ctxdata.vision.pool import load_pool, safe_relative


def noise(w=48, h=32, mode="RGB", seed=0):
    arr = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode)


def encoded(img, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def write_pool(root, files: dict[str, bytes], lines: list) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "qa.jsonl").write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))


def qa(image, question="What colour is the square?", answer="red", **kw):
    return {"image": image, "question": question, "answer": answer, **kw}


GOOD = {
    "rgba.png": lambda: encoded(noise(mode="RGBA"), "PNG"),
    "palette.png": lambda: encoded(noise().convert("P"), "PNG"),
    "gray16.png": lambda: encoded(Image.fromarray((np.arange(48 * 32).reshape(32, 48) * 40).astype(np.uint16)), "PNG"),
    "cmyk.jpg": lambda: encoded(noise(mode="CMYK"), "JPEG"),
    "photo.webp": lambda: encoded(noise(), "WEBP"),
    "scan.tiff": lambda: encoded(noise(), "TIFF"),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_every_format_decodes_to_rgb(name):
    img = decode_image(GOOD[name](), name=name)
    assert img.mode == "RGB" and img.size == (48, 32)


def test_exif_rotation_is_applied():
    img = noise(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW on display
    out = decode_image(encoded(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)


def test_alpha_is_composited_on_white():
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert decode_image(encoded(img, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_png_bytes_are_deterministic():
    assert png_bytes(noise()) == png_bytes(noise())


def test_bad_pool_finishes_with_every_reason(tmp_path):
    good = encoded(noise(), "PNG")
    files = {"ok.png": good, "empty.png": b"", "corrupt.png": b"this is not an image" * 5, "trunc.png": good[: len(good) // 2],
             "bomb.png": encoded(Image.new("L", (1200, 1000)), "PNG"), **{k: v() for k, v in GOOD.items()}}
    (tmp_path.parent / "outside.png").write_bytes(good)
    lines = [qa(name) for name in files] + [
        qa("missing.png"), qa("../outside.png"), qa(str(tmp_path / "ok.png")), "{not json", {"image": "ok.png", "question": "Q?"}, "",
    ]
    write_pool(tmp_path, files, lines)
    ctx = RunContext()
    pool = load_pool(tmp_path, ctx, max_pixels=1_000_000)
    reasons = Counter(r.reason for r in ctx.rejects)
    assert reasons == Counter({"image_empty": 1, "image_corrupt": 1, "image_truncated": 1, "decompression_bomb": 1,
                               "image_missing": 1, "path_outside_pool": 2, "invalid_json": 1, "missing_field": 1})
    assert all(r.kind == "input" for r in ctx.rejects)
    assert pool.inputs == len(pool.records) + len(ctx.rejects) == len(lines) - 1  # the blank line is no input
    assert sorted(pool.images) == sorted(["ok.png", *GOOD])
    assert all(img.mode == "RGB" for img in pool.images.values())


def test_records_share_an_image_and_keep_type_and_region(tmp_path):
    write_pool(tmp_path, {"a/b.png": encoded(noise(), "PNG")}, [
        qa("a/b.png", region=[1, 2, 10, 12]), qa("a/b.png", "How many dots are there?", "3"), qa("a/b.png", "Anything odd?", "no", type="yesno")])
    pool = load_pool(tmp_path, RunContext())
    assert list(pool.images) == ["a/b.png"]
    assert [r.qtype for r in pool.records] == ["color", "count", "yesno"]
    assert pool.records[0].region == [1.0, 2.0, 10.0, 12.0] and pool.records[0].image_id == "a/b.png"


def test_safe_relative_refuses_escapes(tmp_path):
    for rel in ("../x.png", "a/../../x.png", "/etc/passwd", "C:\\x.png", ""):
        with pytest.raises(ImageRejected) as exc:
            safe_relative(tmp_path, rel)
        assert exc.value.reason == "path_outside_pool"
    assert safe_relative(tmp_path, "a/../b.png") == (tmp_path / "b.png").resolve()


def test_parquet_pool_with_bytes_and_paths(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "p.png").write_bytes(encoded(noise(seed=1), "PNG"))
    rows = [
        {"image": {"bytes": encoded(noise(), "PNG"), "path": "inline.png"}, "question": "Q?", "answer": "a"},
        {"image": {"bytes": None, "path": "p.png"}, "question": "Q?", "answer": "b"},
        {"image": {"bytes": b"", "path": "zero.png"}, "question": "Q?", "answer": "c"},
        {"image": {"bytes": None, "path": "p.png"}, "question": None, "answer": "d"},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pool.parquet")
    ctx = RunContext()
    pool = load_pool(tmp_path / "pool.parquet", ctx)
    assert [r.image_id for r in pool.records] == ["inline.png", "p.png"]
    assert sorted(r.reason for r in ctx.rejects) == ["image_empty", "missing_field"]


def test_datasets_folder_pool(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"image": [noise(seed=i) for i in range(3)], "question": ["Q?"] * 3, "answer": ["x", "y", "z"]},
                                    features=datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"), "answer": datasets.Value("string")}))
    ds.save_to_disk(str(tmp_path / "ds"))
    pool = load_pool(tmp_path / "ds", RunContext())
    assert len(pool.records) == 3 and len(pool.images) == 3


def test_not_a_pool_is_a_clear_error(tmp_path):
    with pytest.raises(CtxdataError, match="not a pool"):
        load_pool(tmp_path, RunContext())
    with pytest.raises(CtxdataError, match="does not exist"):
        load_pool(tmp_path / "nope", RunContext())


def test_mask_regions_are_paths_inside_the_pool(tmp_path):
    from ctxdata.vision.images import region_mask

    mask = Image.new("L", (48, 32), 0)
    mask.paste(255, (4, 4, 12, 10))
    write_pool(tmp_path, {"a.png": encoded(noise(), "PNG"), "masks/a.png": encoded(mask, "PNG")},
               [qa("a.png", region="masks/a.png"), qa("a.png", region="../../etc/mask.png")])
    ctx = RunContext()
    pool = load_pool(tmp_path, ctx)
    assert [r.reason for r in ctx.rejects] == ["path_outside_pool"] and "region mask" in ctx.rejects[0].detail
    m = region_mask((48, 32), pool.records[0].region)
    assert m.sum() == 8 * 6 and m[5, 5] and not m[20, 20]


def test_a_lone_surrogate_escape_in_a_question_becomes_a_replacement_character(tmp_path):
    write_pool(tmp_path, {"a.png": encoded(noise(), "PNG")}, [qa("a.png", question="What is \ud800 here?")])
    assert "\\ud800" in (tmp_path / "qa.jsonl").read_text()  # json.dumps escapes it
    pool = load_pool(tmp_path, RunContext())
    assert [r.question for r in pool.records] == ["What is \ufffd here?"]


def test_a_qa_line_nested_too_deep_is_an_invalid_json_reject(tmp_path):
    write_pool(tmp_path, {"a.png": encoded(noise(), "PNG")}, [qa("a.png"), "[" * 100_000 + "]" * 100_000])
    ctx = RunContext()
    pool = load_pool(tmp_path, ctx)
    assert len(pool.records) == 1 and [r.reason for r in ctx.rejects] == ["invalid_json"]


def test_bad_regions_and_non_text_fields_are_rejects_with_reasons(tmp_path):
    rows = [qa("a.png", region=[5, 5, 30, 20]), qa("a.png", region=[1, 2, 3]), qa("a.png", region=[0.1, 0.1, 0.4, 0.4]),
            qa("a.png", region=[500, 500, 600, 600]), qa("a.png", region=["a", "b", "c", "d"]), qa("a.png", region=[5, 5, float("nan"), 9]),
            qa("a.png", region="missing-mask.png"), qa("a.png", question={"q": 1}), qa("a.png", answer=3), {"image": ["a.png"], "question": "q?", "answer": "a"}]
    write_pool(tmp_path, {"a.png": encoded(noise(), "PNG")}, rows)
    ctx = RunContext()
    pool = load_pool(tmp_path, ctx)
    assert [(r.region, r.answer) for r in pool.records] == [([5.0, 5.0, 30.0, 20.0], "red"), (None, "3")]  # a numeric answer is text enough
    assert [r.reason for r in ctx.rejects] == ["bad_region"] * 5 + ["image_missing", "bad_field", "bad_field"]
    assert "covers no pixel of the 48x32 image" in ctx.rejects[1].detail and ctx.rejects[5].detail.startswith("region mask:")
    assert pool.inputs == len(pool.records) + len(ctx.rejects)


def test_randomly_mutated_qa_rows_never_crash_the_pool(tmp_path):
    import copy
    import random

    weird = [None, 0, -1, 1.5, True, "", [], {}, [None], {"a": None}, "\x00", "\ud800", 2**70, "../../x.png", "/etc/passwd",
             [1, 2, 3, 4], [0.1, 0.2, 0.9, 0.8], ["a", "b"], [float("inf")] * 4, "nan", "b.png"]
    rng, rows = random.Random(0), []
    for i in range(120):
        row = qa(f"{'ab'[i % 2]}.png", region=[5, 5, 30, 20], type="color")
        for _ in range(rng.randint(1, 2)):
            row[rng.choice(["image", "question", "answer", "type", "region", "scene"])] = copy.deepcopy(rng.choice(weird))
        rows.append(row)
    write_pool(tmp_path, {"a.png": encoded(noise(), "PNG"), "b.png": encoded(noise(seed=1), "PNG")}, rows)
    ctx = RunContext()
    pool = load_pool(tmp_path, ctx)
    assert pool.inputs == 120 == len(pool.records) + len(ctx.rejects)
    assert 0 < len(pool.records) < 120 and all(isinstance(r.question, str) and isinstance(r.answer, str) for r in pool.records)


def test_parquet_pool_mask_regions_resolve_in_its_folder_and_must_decode(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "p.png").write_bytes(encoded(noise(), "PNG"))
    mask = np.zeros((32, 48), dtype=np.uint8)
    mask[4:12, 6:20] = 255
    (tmp_path / "m.png").write_bytes(encoded(Image.fromarray(mask, "L"), "PNG"))
    rows = [{"image": "p.png", "question": "Q?", "answer": "a", "region": region} for region in ("m.png", "nope.png", "../m.png")]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pool.parquet")
    ctx = RunContext()
    pool = load_pool(tmp_path / "pool.parquet", ctx)
    assert [r.region for r in pool.records] == [str((tmp_path / "m.png").resolve())]
    assert [r.reason for r in ctx.rejects] == ["image_missing", "path_outside_pool"]
    assert all(r.detail.startswith("region mask:") for r in ctx.rejects)


# --- issue #10 ------------------------------------------------------------------------------------


def test_duplicate_rows_are_rejected_so_no_pair_repeats(tmp_path):
    write_pool(tmp_path, {"a.png": png_bytes(noise())}, [qa("a.png"), qa("b.png"), qa("a.png"), qa("a.png", question=" what colour is the  SQUARE? "),
                                                        qa("a.png", answer="blue")])
    ctx = RunContext()
    pool = load_pool(tmp_path, ctx)
    assert [r.answer for r in pool.records] == ["red", "blue"]
    reasons = Counter(r.reason for r in ctx.rejects)
    assert reasons == {"duplicate_row": 2, "image_missing": 1} and pool.inputs == len(pool.records) + len(ctx.rejects)
    assert "qa.jsonl:1" in next(r.detail for r in ctx.rejects if r.reason == "duplicate_row")


def test_a_wholly_negative_region_covers_no_pixel(tmp_path):
    from ctxdata.vision.images import region_mask

    assert not region_mask((100, 80), [-50, -50, -10, -10]).any()
    assert region_mask((100, 80), [-5, -5, 10, 10]).sum() == 100  # clipped, not wrapped
    assert not region_mask((100, 80), [200, 10, 300, 20]).any()
    write_pool(tmp_path, {"a.png": png_bytes(noise())}, [qa("a.png", region=[-50, -50, -10, -10]), qa("a.png", answer="blue", region=[1, 1, 9, 9])])
    ctx = RunContext()
    pool = load_pool(tmp_path, ctx)
    assert [r.answer for r in pool.records] == ["blue"] and [r.reason for r in ctx.rejects] == ["bad_region"]


def test_a_pixel_budget_bounds_the_whole_pool(tmp_path):
    files = {f"{i}.png": png_bytes(noise(seed=i)) for i in range(5)}  # 48 x 32 = 1536 pixels each
    write_pool(tmp_path, files, [qa(f"{i}.png", answer=str(i)) for i in range(5)] + [qa("0.png", answer="again")])
    ctx = RunContext()
    pool = load_pool(tmp_path, ctx, max_pool_pixels=3 * 1536)
    assert sorted(pool.images) == ["0.png", "1.png", "2.png"] and len(pool.records) == 4  # a kept image costs nothing twice
    assert Counter(r.reason for r in ctx.rejects) == {"pixel_budget": 2}
    assert "max_pool_pixels=4608" in ctx.rejects[0].detail


def test_a_pixel_budget_is_charged_from_the_header_before_decoding(tmp_path):
    from ctxdata.vision.images import PixelBudget

    big = encoded(Image.new("RGB", (4000, 3000)), "PNG")
    budget = PixelBudget(20_000_000)
    decode_image(big, budget=budget)
    with pytest.raises(ImageRejected, match="pixel_budget"):
        decode_image(big, budget=budget)
    assert budget.used == 12_000_000
    spent = PixelBudget(10**9)  # a truncated image fails to decode: nothing stays charged
    with pytest.raises(ImageRejected):
        decode_image(big[: len(big) // 2], budget=spent)
    assert spent.used == 0


def test_a_utf8_byte_order_mark_is_accepted_in_qa_jsonl(tmp_path):
    write_pool(tmp_path, {"a.png": png_bytes(noise())}, [qa("a.png")])
    (tmp_path / "qa.jsonl").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "qa.jsonl").read_bytes())
    ctx = RunContext()
    assert len(load_pool(tmp_path, ctx).records) == 1 and not ctx.rejects


def test_an_image_that_is_a_fifo_is_a_reject_not_a_hang(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.png")
    write_pool(tmp_path, {"a.png": png_bytes(noise())}, [qa("pipe.png"), qa("a.png")])
    ctx = RunContext()
    pool = load_pool(tmp_path, ctx)
    assert len(pool.records) == 1 and [r.reason for r in ctx.rejects] == ["not_regular_file"]


def test_a_damaged_parquet_or_datasets_pool_is_one_clean_error(tmp_path):
    (tmp_path / "pool.parquet").write_bytes(b"PAR1" + b"\x00" * 64)
    with pytest.raises(CtxdataError, match="not a readable Parquet file"):
        load_pool(tmp_path / "pool.parquet", RunContext())
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset_info.json").write_text("{broken")
    (tmp_path / "ds" / "state.json").write_text("{}")
    with pytest.raises(CtxdataError, match="not a readable datasets folder"):
        load_pool(tmp_path / "ds", RunContext())
