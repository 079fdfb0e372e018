"""Vision checks: blank images, duplicates by pixels, similarity band, edit locality, VQA judge, pass@k band."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from PIL import Image

from ctxdata.vision import checks as V
from ctxdata.vision.build import Candidate


def solid(color, size=(32, 32)):
    return Image.new("RGB", size, color)


def noisy(seed=0, size=(32, 32)):
    return Image.fromarray((np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8))


def cand(anchor, confounder, *, strategy="retrieval", cosine=0.95, region=None, edited=None):
    """A candidate after MakeConfounder: both images in their roles."""
    c = Candidate(strategy, f"{strategy}:test", 0, edited=edited, cosine=cosine, region=region,
                  question="What colour is the square?")
    c.set_roles((anchor, "a.png", "red"), (confounder, "b.png", "blue"))
    return c


def run_checks(checks, candidates):
    from ctxdata.pipeline import RunContext

    ctx = RunContext()
    kept = list(V.VerifyCandidates(None, checks).run(candidates, ctx))
    return kept, ctx


def test_images_not_blank_rejects_blank_and_missing_under_image_blank():
    check = V.ImagesNotBlank()
    assert check(cand(noisy(0), noisy(1)), None)[0].passed
    assert not check(cand(noisy(0), solid((0, 0, 0))), None)[0].passed
    missing = check(cand(noisy(0), None), None)[0]
    assert "missing" in missing.detail and check.reason(missing) == "image_blank"


def test_duplicates_are_decided_by_pixels_not_cosine():
    base = noisy(0, (40, 40))
    arr = np.asarray(base).copy()
    arr[2:6, 2:6] = 255 - arr[2:6, 2:6]  # a 4x4 change: 1% of the pixels
    kept, ctx = run_checks([V.NotDuplicate(), V.SimilarityBand((0.9, 1.0))],
                           [cand(base, base.copy(), cosine=1.0), cand(base, Image.fromarray(arr), cosine=1.0000001)])
    assert len(kept) == 1 and kept[0].checks[0].score == pytest.approx(16 / 1600)
    assert ctx.stats["verify"].dropped == {"duplicate": 1} and ctx.counters == {"retrieval:rejected:duplicate": 1}
    assert "identical" in ctx.rejects[0].detail
    # a tiny re-encoding noise (below the pixel tolerance) is still a duplicate
    noise = np.clip(np.asarray(base).astype(int) + 3, 0, 255).astype(np.uint8)
    assert not V.NotDuplicate()(cand(base, Image.fromarray(noise)), None)[0].passed
    assert V.NotDuplicate()(cand(base, noisy(0, (20, 20))), None)[0].passed  # other size: not a copy


def test_similarity_band_edges_and_near_copies_below_it():
    band = V.SimilarityBand((0.9, 0.995))
    assert band(cand(noisy(0), noisy(1), cosine=0.95), None)[0].passed
    high = band(cand(noisy(0), noisy(1), cosine=0.999), None)[0]
    assert not high.passed and band.reason(high) == "similarity_above_band"
    low = band(cand(noisy(0), noisy(1), cosine=0.5), None)[0]
    assert not low.passed and "below" in low.detail and low.score == 0.5
    assert band.reason(low) == "similarity_below_band"
    base = noisy(0, (40, 40))
    arr = np.asarray(base).copy()
    arr[0:10, 0:10] = 0  # 6% of the pixels: a near-copy the embedder put far away
    near = V.SimilarityBand((0.9, 1.0), near_copy=0.25)
    assert near(cand(base, Image.fromarray(arr), cosine=0.5), None)[0].passed
    assert not near(cand(base, noisy(1, (40, 40)), cosine=0.5), None)[0].passed  # a different image
    strict = V.SimilarityBand((0.9, 1.0), near_copy=0.05)
    assert not strict(cand(base, Image.fromarray(arr), cosine=0.5), None)[0].passed


def test_edit_locality_measures_change_outside_the_region_whichever_role_the_edit_took():
    base = noisy(0, (40, 40))
    arr = np.asarray(base).copy()
    arr[10:20, 10:20] = 255 - arr[10:20, 10:20]
    local = Image.fromarray(arr)
    check = V.EditIsLocal()
    for edited, (a, b) in (("confounder", (base, local)), ("anchor", (local, base))):
        changed, locality = check(cand(a, b, strategy="edit", region=[10, 10, 20, 20], edited=edited), None)
        assert changed.passed and locality.passed and locality.score == 0.0
    arr[30:40, 30:40] = 255 - arr[30:40, 30:40]  # a change far from the region
    far = cand(base, Image.fromarray(arr), strategy="edit", region=[10, 10, 20, 20], edited="confounder")
    changed, locality = check(far, None)
    assert not locality.passed and locality.score > 0.02
    assert not check(cand(base, base, strategy="edit", region=[10, 10, 20, 20], edited="confounder"), None)[0].passed
    assert check(cand(base, local), None) == []  # retrieval pairs: not an edit, nothing recorded


def test_answers_match_normalises():
    assert V.answers_match("Red.", "red") and V.answers_match("three", "3") and V.answers_match("Blue. The car is blue", "blue")
    assert not V.answers_match("green", "red")


class ColourVQAServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat server that names the dominant colour of the image it is sent."""

    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ColourVQAServer.requests.append(body)
        url = next(p["image_url"]["url"] for p in body["messages"][-1]["content"] if p["type"] == "image_url")
        img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        r, g, b = np.asarray(img, dtype=float).reshape(-1, 3).mean(axis=0)
        word = "red" if r > max(g, b) else "blue" if b > max(r, g) else "green"
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": word.capitalize() + "."}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def vqa_server():
    server = HTTPServer(("127.0.0.1", 0), ColourVQAServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_verifier_checks_both_answers(vqa_server):
    vqa = V.make_vqa(f"openai:{vqa_server}")
    red, blue = solid((200, 20, 20)), solid((20, 20, 200))
    judge = V.JudgeAnswers(vqa)
    ok = judge(cand(red, blue), None)
    assert [c.passed for c in ok] == [True, True]
    wrong = cand(red, blue)
    wrong.answer_confounder = "green"
    kept, ctx = run_checks([judge], [wrong])
    assert not kept and ctx.stats["verify"].dropped == {"vqa_confounder_wrong": 1} and "Blue" in ctx.rejects[0].detail
    sent = ColourVQAServer.requests[-1]["messages"][-1]["content"]
    assert any(p["type"] == "text" and "What colour is the square?" in p["text"] for p in sent)


def test_make_vqa_specs():
    assert V.make_vqa("none") is None and V.make_vqa(None) is None
    fake = FakeAnswerer(["x"])
    assert V.make_vqa(fake) is fake
    with pytest.raises(Exception, match="openai:"):
        V.make_vqa("gpt")


class FakeAnswerer:
    """Deterministic: cycles through `script` one answer per call."""

    def __init__(self, script):
        self.script, self.calls = list(script), 0

    def answer(self, image, question):
        reply = self.script[self.calls % len(self.script)]
        self.calls += 1
        return reply


@pytest.mark.parametrize("solved_every,expected_rate,kept", [(1, 1.0, False), (2, 0.5, True), (4, 0.25, True), (8, 0.125, False)])
def test_difficulty_pass_at_8_band(solved_every, expected_rate, kept):
    # per sample the model answers (anchor, confounder); it solves one sample in `solved_every`
    script = []
    for s in range(8):
        script += ["red", "blue"] if s % solved_every == 0 else ["red", "red"]
    fake = FakeAnswerer(script)
    band = V.DifficultyBand(fake)
    check = band(cand(noisy(0), noisy(1)), None)[0]
    assert fake.calls == 16
    assert check.score == expected_rate and check.passed is kept
    if not kept:
        assert band.reason(check) == ("too_easy" if expected_rate > 0.63 else "too_hard")
