"""Checks for vision pairs. Each returns a `Check`; a failed check rejects the candidate under its name.

    images_decode      both images exist, decode, and are not blank (single-coloured)
    similarity_band    the confounder's embedder cosine to the anchor lies in [lo, hi]
    edit_changed       an edit really changed pixels inside the decisive region
    edit_locality      the fraction of pixels OUTSIDE the (padded) region that changed is <= a bound
    vqa_anchor/_confounder   optional VQA judge answers `answer` on the anchor and
                       `answer_confounder` on the confounder (`--verifier hf:<path>|openai:<base-url>`)
    difficulty         optional pass@k band: a target model solves the pair in 25-63% of 8 samples
                       (the paper's filter: not trivially solved, not hopeless)

VQA backends come from `ctxdata.verify.judge.make_vqa` (`openai:<base-url>` | `hf:<path>`); any
object with `.answer(image, question) -> str` works too (tests pass fakes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ctxdata.errors import ConfigError
from ctxdata.schema import Check
from ctxdata.vision.images import changed_pixels, is_blank, region_mask
from ctxdata.vision.templates import normalize_answer


def check_images(anchor, confounder) -> Check:
    """Both images present, decodable (they are PIL here) and not blank."""
    for name, img in (("anchor", anchor), ("confounder", confounder)):
        if img is None:
            return Check("images_decode", False, 0.0, f"{name} image missing")
        if is_blank(img):
            return Check("images_decode", False, 0.0, f"{name} image is blank (std < 2)")
    return Check("images_decode", True, 1.0, f"{anchor.size[0]}x{anchor.size[1]} / {confounder.size[0]}x{confounder.size[1]}")


def check_similarity(cosine: float, band: tuple[float, float]) -> Check:
    lo, hi = band
    ok = lo <= cosine <= hi
    detail = f"cosine {cosine:.4f} in [{lo}, {hi}]" if ok else f"cosine {cosine:.4f} {'below' if cosine < lo else 'above'} band [{lo}, {hi}]"
    return Check("similarity_band", ok, cosine, detail)


def edit_change_stats(original, edited, region, *, pad: int = 6, tol: int = 24) -> tuple[float, float]:
    """(fraction of region pixels changed, fraction of pixels outside the padded region changed)."""
    changed = changed_pixels(original, edited, tol=tol)
    inside = region_mask(original.size, region, pad=pad)
    in_frac = float(changed[inside].mean()) if inside.any() else 0.0
    out_frac = float(changed[~inside].mean()) if (~inside).any() else 0.0
    return in_frac, out_frac


def check_edit(original, edited, region, *, max_outside: float = 0.02, min_inside: float = 0.01) -> list[Check]:
    """`edit_changed` (something changed in the region) and `edit_locality` (little changed outside)."""
    in_frac, out_frac = edit_change_stats(original, edited, region)
    return [
        Check("edit_changed", in_frac >= min_inside, in_frac, f"{in_frac:.1%} of the region changed (min {min_inside:.1%})"),
        Check("edit_locality", out_frac <= max_outside, out_frac, f"{out_frac:.2%} of pixels outside the region changed (max {max_outside:.1%})"),
    ]


def answers_match(predicted: str, expected: str) -> bool:
    """Normalised equality, or the expected answer as a whole word at the start of a longer reply."""
    p, e = normalize_answer(predicted), normalize_answer(expected)
    return p == e or (p.split()[:1] == [e]) or normalize_answer(p.split(".")[0]) == e


def check_vqa(vqa, anchor, confounder, question: str, answer: str, answer_confounder: str) -> list[Check]:
    """The judge must answer `answer` on the anchor and `answer_confounder` on the confounder."""
    checks = []
    for name, image, expected in (("vqa_anchor", anchor, answer), ("vqa_confounder", confounder, answer_confounder)):
        got = vqa.answer(image, question)
        checks.append(Check(name, answers_match(got, expected), None, f"judge said {got[:80]!r}, expected {expected!r}"))
    return checks


def pass_rate(vqa, anchor, confounder, question: str, answer: str, answer_confounder: str, *, samples: int = 8) -> float:
    """Fraction of `samples` attempts in which the target model answers BOTH images correctly."""
    solved = 0
    for _ in range(samples):
        ok_a = answers_match(vqa.answer(anchor, question), answer)
        ok_c = answers_match(vqa.answer(confounder, question), answer_confounder)
        solved += ok_a and ok_c
    return solved / samples


def check_difficulty(vqa, anchor, confounder, question, answer, answer_confounder, *, band=(0.25, 0.63), samples: int = 8) -> Check:
    rate = pass_rate(vqa, anchor, confounder, question, answer, answer_confounder, samples=samples)
    lo, hi = band
    return Check("difficulty", lo <= rate <= hi, rate, f"pass rate {rate:.2f} over {samples} samples (keep [{lo}, {hi}])")


def make_vqa(spec: Any):
    """None for `none`, an object with `.answer` as is, else `openai:<base-url>` / `hf:<path>`."""
    if spec is None or spec == "none" or spec == "":
        return None
    if hasattr(spec, "answer"):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"VQA spec {spec!r} must be none, openai:<base-url> or hf:<local path>")
    try:
        from ctxdata.verify.judge import make_vqa as judge_vqa
    except ModuleNotFoundError:  # the judges module is not installed in this tree: thin OpenAI adapter
        if spec.startswith("openai:"):
            return OpenAIVQAAdapter(spec.split(":", 1)[1])
        raise ConfigError(f"{spec!r} needs ctxdata.verify.judge (hf: VQA models), which this install lacks") from None
    return judge_vqa(spec)


class OpenAIVQAAdapter:
    """Minimal OpenAI-compatible VQA client (urllib): one image + question -> short answer."""

    def __init__(self, base_url: str, *, model: str = "gpt-4o-mini", timeout: float = 60.0):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{base_url!r} is not an http(s) base URL; e.g. openai:http://127.0.0.1:8000/v1")
        url = base_url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model, self.timeout = model, timeout

    def answer(self, image, question: str) -> str:
        import base64
        import io
        import json
        import os
        import urllib.request

        from ctxdata.errors import CtxdataError

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data_url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        content = [{"type": "image_url", "image_url": {"url": data_url}}, {"type": "text", "text": f"{question}\nAnswer with a single word or number."}]
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": content}], "temperature": 0.0, "max_tokens": 32}).encode()
        headers = {"Content-Type": "application/json"}
        if os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url, body, headers), timeout=self.timeout) as resp:
                reply = json.loads(resp.read())
            return str(reply["choices"][0]["message"]["content"]).strip()
        except Exception as exc:  # network / protocol failure: a clear error naming the URL
            raise CtxdataError(f"VQA request to {self.url} failed: {type(exc).__name__}: {exc}") from None


def region_for_meta(region: Any, size: tuple[int, int]) -> list[float] | None:
    """A JSON-able box for `meta`: boxes as is, masks as their bounding box."""
    if region is None:
        return None
    if isinstance(region, (list, tuple)):
        return [float(v) for v in region]
    mask = region_mask(size, region)
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)] if len(xs) else None
