"""Vision checks: blank images, similarity band, edit locality, VQA judge over HTTP, pass@k band."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from PIL import Image

from ctxdata.verify import vision as V


def solid(color, size=(32, 32)):
    return Image.new("RGB", size, color)


def noisy(seed=0, size=(32, 32)):
    return Image.fromarray((np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8))


def test_images_decode_rejects_blank_and_missing():
    assert V.check_images(noisy(0), noisy(1)).passed
    assert not V.check_images(noisy(0), solid((0, 0, 0))).passed
    assert "missing" in V.check_images(noisy(0), None).detail


def test_similarity_band_edges():
    assert V.check_similarity(0.95, (0.9, 0.995)).passed
    assert not V.check_similarity(0.999, (0.9, 0.995)).passed
    low = V.check_similarity(0.5, (0.9, 0.995))
    assert not low.passed and "below" in low.detail and low.score == 0.5


def test_edit_locality_measures_change_outside_the_region():
    base = noisy(0, (40, 40))
    arr = np.asarray(base).copy()
    arr[10:20, 10:20] = 255 - arr[10:20, 10:20]
    local = Image.fromarray(arr)
    changed, locality = V.check_edit(base, local, [10, 10, 20, 20])
    assert changed.passed and locality.passed and locality.score == 0.0
    arr[30:40, 30:40] = 255 - arr[30:40, 30:40]  # a change far from the region
    changed, locality = V.check_edit(base, Image.fromarray(arr), [10, 10, 20, 20])
    assert not locality.passed and locality.score > 0.02
    assert not V.check_edit(base, base, [10, 10, 20, 20])[0].passed  # nothing changed


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
    ok = V.check_vqa(vqa, red, blue, "What colour is the square?", "red", "blue")
    assert [c.passed for c in ok] == [True, True]
    wrong = V.check_vqa(vqa, red, blue, "What colour is the square?", "red", "green")
    assert [c.passed for c in wrong] == [True, False] and "Blue" in wrong[1].detail
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
    check = V.check_difficulty(fake, noisy(0), noisy(1), "What colour?", "red", "blue")
    assert fake.calls == 16
    assert check.score == expected_rate and check.passed is kept
