"""Pair judges: is a pair UNAMBIGUOUS? (the ContextRL paper's GPT-5 check), plus VQA answerers.

A judge sees what the trained model will see -- the query, the answer (the anchor's patch) and
both contexts, each clipped to a character budget -- and must say which context supports the
answer. A pair passes only when the judge picks the anchor with a margin
`p(anchor) - p(confounder) >= threshold`. With `both_orders=True` (the default) every pair is
judged twice, contexts swapped, and the two margins are averaged: small judges prefer one letter
whatever the contexts say, and averaging over both orders cancels that position bias.

    --judge none                      keep every pair, record no check
    --judge hf:<local path or alias>  A/B next-token probabilities of a causal LM (read at the answer
                                      position; max over the " A" / "A" token variants)
    --judge openai:<base-url>         one-letter (or JSON) reply of an OpenAI-compatible server,
                                      images sent as data URLs; logprobs used when asked for

Backends check their configuration at construction and load models on first use.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator

from ctxdata._deps import check
from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.models import check_model_available, load_causal_lm, resolve_model
from ctxdata.pipeline import RunContext, Stage
from ctxdata.schema import Check, Pair
from ctxdata.train.prompts import INSTRUCTION, SYSTEM, selection_text
from ctxdata.verify import openai_client as oai

JUDGE_FORMS = "none | hf:<local path or alias> | openai:<base-url>"
LETTERS = ("A", "B")


@dataclass(frozen=True)
class Verdict:
    """The judgement of one pair."""

    passed: bool
    score: float | None  # mean p(anchor) - p(confounder) over the orders judged; None when not judged
    detail: str
    reason: str = "judge_ambiguous"  # drop reason when not passed: judge_ambiguous | judge_error | judge_unsupported


@dataclass(frozen=True)
class LetterProbs:
    """A judge's belief for one prompt: p("A"), p("B"), or why there is none."""

    p_a: float = 0.0
    p_b: float = 0.0
    note: str = ""  # e.g. the raw reply when it could not be parsed
    error: str = ""  # transport / length problem: the pair is dropped as judge_error
    reason: str = "judge_error"


def clip(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, keeping the head and the tail (where test results are)."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


class Judge:
    """Base: builds the two views of each pair, asks the backend for letter probabilities, decides."""

    enabled: ClassVar[bool] = True

    def __init__(self, *, threshold: float = 0.2, both_orders: bool = True, max_context_chars: int = 6000, max_text_chars: int = 3000):
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"judge threshold must be in (0, 1], got {threshold}: it is the required p(anchor) - p(confounder)")
        if min(max_context_chars, max_text_chars) < 100:
            raise ConfigError("max_context_chars and max_text_chars must be >= 100 characters")
        self.threshold = threshold  # required mean margin p(anchor) - p(confounder)
        self.both_orders = both_orders  # judge A/B and B/A and average, cancelling letter bias
        self.max_context_chars = max_context_chars  # budget per context
        self.max_text_chars = max_text_chars  # budget for the query and for the answer

    def view(self, pair: Pair, swapped: bool) -> dict[str, Any]:
        """The prompt row for one order of `pair` (contexts clipped); `label` is the anchor's slot."""
        a_text, b_text, a_img, b_img = pair.context_a_text, pair.context_b_text, pair.context_a_image, pair.context_b_image
        label = pair.label
        if swapped:
            a_text, b_text, a_img, b_img = b_text, a_text, b_img, a_img
            label = "B" if label == "A" else "A"
        cut = self.max_context_chars
        return {
            "domain": pair.domain,
            "query": clip(pair.query, self.max_text_chars),
            "answer": clip(pair.answer, self.max_text_chars),
            "context_a_text": None if a_text is None else clip(a_text, cut),
            "context_b_text": None if b_text is None else clip(b_text, cut),
            "context_a_image": a_img,
            "context_b_image": b_img,
            "label": label,
        }

    def letter_probs(self, rows: list[dict[str, Any]]) -> list[LetterProbs]:
        raise NotImplementedError

    def judge(self, pairs: list[Pair]) -> list[Verdict]:
        orders = (False, True) if self.both_orders else (False,)
        rows = [self.view(pair, swapped) for pair in pairs for swapped in orders]
        probs = self.letter_probs(rows)
        k = len(orders)
        return [self._decide(rows[i * k : (i + 1) * k], probs[i * k : (i + 1) * k]) for i in range(len(pairs))]

    def _decide(self, rows: list[dict[str, Any]], probs: list[LetterProbs]) -> Verdict:
        errors = [p for p in probs if p.error]
        if errors:
            return Verdict(False, None, "; ".join(p.error for p in errors)[:500], errors[0].reason)
        margins, parts = [], []
        for row, p in zip(rows, probs):
            anchor, other = (p.p_a, p.p_b) if row["label"] == "A" else (p.p_b, p.p_a)
            margins.append(anchor - other)
            parts.append(f"anchor in {row['label']}: p(A)={p.p_a:.3f} p(B)={p.p_b:.3f}" + (f" ({p.note})" if p.note else ""))
        margin = sum(margins) / len(margins)
        passed = margin >= self.threshold
        detail = f"{'; '.join(parts)}; margin {margin:+.3f} {'>=' if passed else '<'} {self.threshold}"
        return Verdict(passed, margin, detail)


class NoJudge(Judge):
    """`--judge none`: every pair passes and no check is recorded."""

    enabled: ClassVar[bool] = False

    def __init__(self, **_: Any):
        super().__init__()

    def letter_probs(self, rows: list[dict[str, Any]]) -> list[LetterProbs]:
        return [LetterProbs(1.0, 1.0) for _ in rows]


class HFJudge(Judge):
    """Next-token A/B probabilities of a local causal LM, read at the assistant's first position."""

    def __init__(self, model: str, *, dtype: str = "float32", device: str = "cpu", batch_size: int = 4,
                 answer_prefix: str = "Context", **common: Any):
        super().__init__(**common)
        # Prefilled start of the reply, so the next token is the letter: SmolLM2-135M puts 0.2% of its
        # mass on A/B right after the assistant tag ("Output ..."), 93% after "Context". Use "" for a
        # model trained on ctxdata's prompt, which answers the bare letter.
        self.answer_prefix = answer_prefix
        check("torch", "transformers", extra="train")
        check_model_available(model)  # a missing model is a misconfiguration: fail now, load later
        self.model_spec, self.dtype, self.device, self.batch_size = model, dtype, device, max(1, batch_size)
        self._model = self._tokenizer = None
        self._letter_ids: dict[str, list[int]] = {}

    def _load(self) -> None:
        self._model, self._tokenizer = load_causal_lm(self.model_spec, dtype=self.dtype, device=self.device)
        self._tokenizer.padding_side = "left"  # the answer position is then the last one in every row
        for letter in LETTERS:
            ids = {tuple(self._tokenizer.encode(v, add_special_tokens=False)) for v in (f" {letter}", letter)}
            self._letter_ids[letter] = sorted(t[0] for t in ids if len(t) == 1)
            if not self._letter_ids[letter]:
                raise ConfigError(f"{self.model_spec}: the tokenizer has no single token for {letter!r}; the hf judge cannot read its choice")

    def prompt(self, row: dict[str, Any]) -> str:
        tok = self._tokenizer
        if not tok.chat_template:
            return f"{SYSTEM}\n\n{selection_text(row)}\nAnswer: {self.answer_prefix}".rstrip()
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": selection_text(row)}]
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + self.answer_prefix

    def letter_probs(self, rows: list[dict[str, Any]]) -> list[LetterProbs]:
        if self._model is None:
            self._load()
        import torch

        tok, model = self._tokenizer, self._model
        limit = getattr(model.config, "max_position_embeddings", None) or 10**9
        out: list[LetterProbs | None] = [None] * len(rows)
        todo = []
        for i, row in enumerate(rows):
            if row["domain"] != "coding":
                out[i] = LetterProbs(error="the hf judge reads text contexts only", reason="judge_unsupported")
                continue
            ids = tok(self.prompt(row), add_special_tokens=not tok.chat_template)["input_ids"]
            if len(ids) > limit:
                out[i] = LetterProbs(error=f"prompt of {len(ids)} tokens exceeds the model's {limit}; lower max_context_chars")
            else:
                todo.append((i, ids))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            batch = tok.pad({"input_ids": [ids for _, ids in chunk]}, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                logits = model(**batch, logits_to_keep=1).logits[:, -1, :].float()  # (batch, vocab)
            probs = torch.softmax(logits, dim=-1)
            for (i, _), p in zip(chunk, probs):
                out[i] = LetterProbs(*(float(p[self._letter_ids[x]].max()) for x in LETTERS))
        return out  # type: ignore[return-value]


_JSON_OBJECT = re.compile(r"\{.*\}", re.S)
_BARE_LETTER = re.compile(r"^[\s*`\"'(\[]*(?:context\s+)?([AB])\b[\s*`\"'.)\]:]*", re.I)
_NAMED_LETTER = re.compile(r"\b(?:context|answer|option)(?:\s+is)?[:\s*]*\**([AB])\b", re.I)


def parse_choice(reply: str) -> tuple[str | None, float | None]:
    """(letter, confidence) from a judge reply: a bare letter, `Context B`, or JSON {"answer": "A", "confidence": 0.9}."""
    text = reply.strip()
    match = _JSON_OBJECT.search(text)
    if match:
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            letter = str(data.get("answer", data.get("choice", data.get("context", "")))).strip().upper()
            conf = data.get("confidence")
            conf = float(conf) if isinstance(conf, (int, float)) and 0 <= conf <= 1 else None
            if letter in LETTERS:
                return letter, conf
    bare = _BARE_LETTER.match(text)
    if bare and (len(text) <= 3 or bare.end() == len(text) or text[bare.end() - 1] in ".:)"):
        return bare.group(1).upper(), None
    named = {m.upper() for m in _NAMED_LETTER.findall(text)}
    return (named.pop(), None) if len(named) == 1 else (None, None)


def _logprob_letters(response: dict[str, Any]) -> tuple[float, float] | None:
    import math

    try:
        top = response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        return None
    best = {x: 0.0 for x in LETTERS}
    for entry in top:
        token = str(entry.get("token", "")).strip().upper()
        if token in best:
            best[token] = max(best[token], math.exp(float(entry["logprob"])))
    return best["A"], best["B"]


def _image_bytes(cell: Any) -> bytes:
    if isinstance(cell, dict) and cell.get("bytes"):
        return cell["bytes"]
    if isinstance(cell, dict) and cell.get("path"):
        with open(cell["path"], "rb") as fh:
            return fh.read()
    raise ValueError("vision context has neither image bytes nor a path")


class OpenAIJudge(Judge):
    """A one-letter (or JSON) reply from an OpenAI-compatible server; vision contexts go as images."""

    def __init__(self, base_url: str, *, model: str = "gpt-5", api_key: str | None = None, temperature: float | None = 0.0,
                 max_tokens: int | None = 16, timeout: float = 60.0, retries: int = 3, backoff: float = 1.0,
                 logprobs: bool = False, workers: int = 4, **common: Any):
        super().__init__(**common)
        self.workers = max(1, workers)  # concurrent requests (both orders of a batch go out together)
        self.url = oai.completions_url(base_url)  # a bad scheme is a ConfigError now, not per pair
        self.model = model  # the server-side model name (the paper used GPT-5)
        self.api_key = api_key  # None: $OPENAI_API_KEY at request time; never logged
        self.request = dict(temperature=temperature, max_tokens=max_tokens, timeout=timeout, retries=retries, backoff=backoff)
        self.extra = {"logprobs": True, "top_logprobs": 5} if logprobs else None  # confidence from token logprobs

    def messages(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        if row["domain"] == "coding":
            content: Any = selection_text(row)
        else:
            head = f"Question:\n{row['query']}\n\nAnswer:\n{row['answer']}\n\nContext A:"
            content = [oai.text_part(head), oai.image_part(_image_bytes(row["context_a_image"])), oai.text_part("Context B:"),
                       oai.image_part(_image_bytes(row["context_b_image"])), oai.text_part(INSTRUCTION)]
        return [{"role": "system", "content": SYSTEM + " Reply with exactly one letter: A or B."}, {"role": "user", "content": content}]

    def letter_probs(self, rows: list[dict[str, Any]]) -> list[LetterProbs]:
        if self.workers == 1 or len(rows) == 1:
            return [self._ask(row) for row in rows]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(self.workers, len(rows))) as pool:
            return list(pool.map(self._ask, rows))

    def _ask(self, row: dict[str, Any]) -> LetterProbs:
        try:
            messages = self.messages(row)
        except (OSError, ValueError) as exc:
            return LetterProbs(error=f"cannot build the judge prompt: {exc}")
        try:
            response = oai.chat_completion(self.url, messages, model=self.model, api_key=self.api_key, extra=self.extra, **self.request)
            reply = oai.reply_text(response, self.url)
        except CtxdataError as exc:
            return LetterProbs(error=str(exc))
        from_logprobs = _logprob_letters(response) if self.extra else None
        if from_logprobs is not None and sum(from_logprobs) > 0:
            return LetterProbs(*from_logprobs, note=f"reply {reply.strip()[:20]!r}, logprobs")
        letter, conf = parse_choice(reply)
        if letter is None:
            return LetterProbs(0.0, 0.0, note=f"unparsable reply {reply.strip()[:80]!r}")
        p = 1.0 if conf is None else conf
        return LetterProbs(p, 1.0 - p, note=f"reply {reply.strip()[:20]!r}") if letter == "A" else LetterProbs(1.0 - p, p, note=f"reply {reply.strip()[:20]!r}")


JUDGES: dict[str, type[Judge]] = {"none": NoJudge, "hf": HFJudge, "openai": OpenAIJudge}


def _split_spec(spec: str, registry: dict[str, Any], forms: str, what: str) -> tuple[str, str]:
    kind, _, target = str(spec).strip().partition(":")
    if kind not in registry or (kind != "none" and not target.strip()) or (kind == "none" and target):
        raise ConfigError(f"unknown {what} {spec!r}; valid forms: {forms} (backends: {', '.join(registry)})")
    return kind, target.strip()


def make_judge(spec: str, **options: Any) -> Judge:
    """A judge from `none | hf:<local path or alias> | openai:<base-url>`; `options` go to its constructor."""
    kind, target = _split_spec(spec, JUDGES, JUDGE_FORMS, "judge")
    try:
        return JUDGES[kind](target, **options) if target else JUDGES[kind](**options)
    except TypeError as exc:  # an option this backend does not take
        raise ConfigError(f"judge {spec!r}: {exc}") from None


class JudgePairs(Stage):
    """Keep only pairs a judge finds unambiguous; records a `judge` check on every pair it sees."""

    name: ClassVar[str] = "judge"

    def __init__(self, judge: str | Judge = "none", *, batch_size: int = 8, **options: Any):
        self.judge = make_judge(judge, **options) if isinstance(judge, str) else judge
        self.batch_size = max(1, batch_size)  # pairs per judge call (HF batches its forward passes within)

    def run(self, records: Iterable[Pair], ctx: RunContext) -> Iterator[Pair]:
        if not self.judge.enabled:
            yield from records
            return
        batch: list[Pair] = []
        for pair in records:
            batch.append(pair)
            if len(batch) >= self.batch_size:
                yield from self._judge_batch(batch, ctx)
                batch = []
        if batch:
            yield from self._judge_batch(batch, ctx)

    def _judge_batch(self, batch: list[Pair], ctx: RunContext) -> Iterator[Pair]:
        for pair, verdict in zip(batch, self.judge.judge(batch), strict=True):
            pair.checks.append(Check("judge", verdict.passed, verdict.score, verdict.detail))
            if verdict.passed:
                yield pair
            else:
                self.drop(ctx, pair, verdict.reason, verdict.detail)


class OpenAIVQA:
    """Answers a question about one image through an OpenAI-compatible vision model."""

    def __init__(self, base_url: str, *, model: str = "gpt-5", api_key: str | None = None, max_tokens: int | None = 64,
                 temperature: float | None = 0.0, timeout: float = 60.0, retries: int = 3, backoff: float = 1.0,
                 instruction: str = "Answer with a single word or number."):
        self.url = oai.completions_url(base_url)
        self.model, self.api_key, self.instruction = model, api_key, instruction
        self.request = dict(temperature=temperature, max_tokens=max_tokens, timeout=timeout, retries=retries, backoff=backoff)

    def answer(self, image: Any, question: str) -> str:
        content = [oai.image_part(image), oai.text_part(f"{question}\n{self.instruction}".strip())]
        return oai.chat(self.url, [{"role": "user", "content": content}], model=self.model, api_key=self.api_key, **self.request).strip()


class HFVQA:
    """Answers through a local transformers `image-text-to-text` pipeline (loaded on first use)."""

    def __init__(self, model: str, *, device: str = "cpu", max_new_tokens: int = 32, instruction: str = "Answer with a single word or number."):
        check("torch", "transformers", extra="train")
        self.path = resolve_model(model)
        self.device, self.max_new_tokens, self.instruction = device, max_new_tokens, instruction
        self._pipe = None

    def answer(self, image: Any, question: str) -> str:
        if self._pipe is None:
            from transformers import pipeline

            self._pipe = pipeline("image-text-to-text", model=str(self.path), device=self.device)
        messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": f"{question}\n{self.instruction}"}]}]
        out = self._pipe(text=messages, max_new_tokens=self.max_new_tokens, return_full_text=False)
        return str(out[0]["generated_text"]).strip()


VQA_BACKENDS: dict[str, type] = {"openai": OpenAIVQA, "hf": HFVQA}


def make_vqa(spec: str, **options: Any) -> OpenAIVQA | HFVQA:
    """A VQA answerer from `openai:<base-url> | hf:<local path>`; `.answer(image, question) -> str`."""
    kind, target = _split_spec(spec, VQA_BACKENDS, "openai:<base-url> | hf:<local path>", "VQA backend")
    return VQA_BACKENDS[kind](target, **options)
