"""A minimal OpenAI-compatible chat client on `urllib` (no `openai` dependency).

Works with api.openai.com and with local servers that speak the same protocol (vLLM, llama.cpp
`llama-server`, Ollama, LM Studio). Images go in as base64 data URLs, so the vision verifiers and
VQA answerers reuse it:

    chat("http://127.0.0.1:8000/v1", [{"role": "user", "content": [text_part("What colour?"), image_part(png)]}],
         model="qwen2.5-vl")

Transient failures (HTTP 429 / 5xx, refused or reset connections, timeouts) are retried with
exponential backoff (honouring a numeric `Retry-After`); everything else fails at once. Every
failure is a `CtxdataError` naming the URL, the status and an excerpt of the body. The API key is
sent only in the Authorization header and is scrubbed from every message.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ctxdata.errors import ConfigError, CtxdataError

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


def completions_url(base_url: str) -> str:
    """`<base_url>/chat/completions` (kept as is when already given); only http(s) URLs are accepted."""
    parsed = urllib.parse.urlparse(base_url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"{base_url!r} is not an http(s) base URL; pass e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1"
        )
    url = base_url.strip().rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(image: Any, mime: str = "image/png") -> dict[str, Any]:
    """An `image_url` content part holding `image` (PNG/JPEG bytes or a PIL image) as a data URL."""
    if not isinstance(image, (bytes, bytearray)):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        image, mime = buf.getvalue(), "image/png"
    data = base64.b64encode(bytes(image)).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _retry_delay(attempt: int, backoff: float, retry_after: str | None) -> float:
    if retry_after:
        try:
            return min(float(retry_after), MAX_RETRY_AFTER_S)
        except ValueError:
            pass  # an HTTP date: fall back to our own schedule
    return backoff * (2**attempt)


def _post(url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


def chat_completion(
    base_url: str,
    messages: list[dict[str, Any]],
    *,
    model: str,
    api_key: str | None = None,
    temperature: float | None = 0.0,
    max_tokens: int | None = 256,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 1.0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST one chat completion and return the decoded JSON response (retrying transient failures).

    `api_key` defaults to `$OPENAI_API_KEY`; without one no Authorization header is sent (local
    servers). `temperature` / `max_tokens` set to None are left out of the body (reasoning models such
    as GPT-5 reject them: pass `extra={"max_completion_tokens": ...}` instead). `extra` is merged into
    the request body (e.g. `{"logprobs": True, "top_logprobs": 5}`).
    """
    url = completions_url(base_url)
    api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    payload: dict[str, Any] = {"model": model, "messages": messages}
    if temperature is not None:
        payload["temperature"] = temperature
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    payload.update(extra or {})
    problem = ""
    for attempt in range(retries + 1):
        retry_after = None
        try:
            return _post(url, payload, headers, timeout)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")[:300] if exc.fp is not None else ""
            problem = f"HTTP {exc.code}: {body.strip() or exc.reason}"
            if exc.code not in RETRY_STATUSES:
                break
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
        except json.JSONDecodeError as exc:
            problem = f"the response is not JSON ({exc})"
            break
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = f"connection failed: {type(reason).__name__}: {reason}"
        if attempt < retries:
            time.sleep(_retry_delay(attempt, backoff, retry_after))
    tries = f" after {attempt + 1} attempts" if attempt else ""
    raise CtxdataError(_scrub(f"POST {url} failed{tries}: {problem}", api_key))


def reply_text(response: dict[str, Any], url: str = "") -> str:
    """The assistant text of the first choice (a CtxdataError when the response has none)."""
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise CtxdataError(f"{url or 'the server'} returned no choices[0].message.content: {json.dumps(response)[:300]}") from None
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def chat(base_url: str, messages: list[dict[str, Any]], *, model: str, **options: Any) -> str:
    """The reply text of one chat completion; options as in `chat_completion`."""
    return reply_text(chat_completion(base_url, messages, model=model, **options), completions_url(base_url))
