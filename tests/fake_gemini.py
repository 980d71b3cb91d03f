"""A small fake of the Gemini REST API (v1beta) on 127.0.0.1, for the real google-genai client.

Point a client at it with ``genai.Client(api_key="fake", http_options=types.HttpOptions(
base_url=fake.url))`` (or ``GOOGLE_GEMINI_BASE_URL``). It implements what context caching uses:

* ``cachedContents``: create (POST), get (GET), update (PATCH ``ttl``/``expireTime``), delete
  (DELETE) and list (GET, paged);
* ``models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``.

Behaviour copied from the real service: success is HTTP 200 with the resource; errors are
``{"error": {"code", "message", "status"}}`` with the real messages (a missing or expired
cache is 403 PERMISSION_DENIED "CachedContent not found (or permission denied)"; a context
under the model's minimum is 400 INVALID_ARGUMENT "Cached content is too small.
total_token_count=..., min_total_token_count=..."; a request with ``cachedContent`` that also
sets ``systemInstruction``, ``tools`` or ``toolConfig`` is refused with 400). Tokens are counted
as whitespace-separated words. The clock is injectable (:class:`FakeClock`), faults can be
injected per request kind (:meth:`FakeGemini.fail`), and every request is counted by kind
(:attr:`FakeGemini.counts`) and kept (:attr:`FakeGemini.requests`).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

NOT_FOUND_MESSAGE = "CachedContent not found (or permission denied)"
CONFLICT_MESSAGE = (
    "CachedContent can not be used with GenerateContent request setting system_instruction, "
    "tools or tool_config.\n\nProposed fix: move those values to CachedContent from "
    "GenerateContent request."
)


class FakeClock:
    """A clock the tests move by hand (seconds since the epoch)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class Fault:
    status: int
    code: str
    message: str
    times: int


@dataclass
class Cache:
    name: str
    model: str
    display_name: str
    body: dict[str, Any]
    tokens: int
    create_time: float
    expire_time: float
    update_time: float = 0.0


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", text)
    if not match:
        raise ValueError(f"invalid duration {text!r}")
    return float(match.group(1))


def count_tokens(value: Any) -> int:
    """Words in every string of ``value`` (a JSON body part)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(count_tokens(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_tokens(v) for v in value)
    return 0


@dataclass
class FakeGemini:
    """The fake service; :meth:`start` it, use :attr:`url`, :meth:`stop` it."""

    clock: Any = field(default_factory=FakeClock)
    #: Minimum tokens of a cache, per model id (``min_tokens_default`` otherwise).
    min_tokens: dict[str, int] = field(default_factory=dict)
    min_tokens_default: int = 32
    #: Seconds each generate request takes (to widen race windows in tests).
    latency: float = 0.0
    #: Seconds each cache create takes.
    create_latency: float = 0.0
    caches: dict[str, Cache] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- control ---------------------------------------------------------------------------
    def start(self) -> FakeGemini:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                parts = urlsplit(self.path)
                status, payload, stream = fake.handle(
                    self.command, parts.path, parse_qs(parts.query), body
                )
                if stream is not None and status == 200:
                    data = b"".join(
                        b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n" for chunk in stream
                    )
                    content_type = "text/event-stream"
                else:
                    data = json.dumps(payload).encode()
                    content_type = "application/json; charset=UTF-8"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fail(self, kind: str, status: int, code: str, message: str, *, times: int = 1) -> None:
        """The next ``times`` requests of ``kind`` (``create``, ``generate``, ...) fail so."""
        with self._lock:
            self.faults.setdefault(kind, []).append(Fault(status, code, message, times))

    def delete_all(self) -> None:
        """Drop every cache, as the service does when they expire or someone deletes them."""
        with self._lock:
            self.caches.clear()

    def live_caches(self) -> list[Cache]:
        now = self.clock()
        with self._lock:
            return [c for c in self.caches.values() if c.expire_time > now]

    def generate_bodies(self) -> list[dict[str, Any]]:
        return [body for kind, body in self.requests if kind in ("generate", "stream")]

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.requests.clear()

    # -- the API ---------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], list[dict[str, Any]] | None]:
        route = self._route(method, path)
        if route is None:
            return (*self._error(404, "NOT_FOUND", f"no route {method} {path}"), None)
        kind, argument = route
        with self._lock:
            self.counts[kind] += 1
            self.requests.append((kind, body))
            faults = self.faults.get(kind)
            if faults:
                fault = faults[0]
                fault.times -= 1
                if fault.times <= 0:
                    faults.pop(0)
                return (*self._error(fault.status, fault.code, fault.message), None)
        handler = getattr(self, f"_{kind}")
        return handler(argument, query, body)  # type: ignore[no-any-return]

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, str] | None:
        path = path.removeprefix("/v1beta").removeprefix("/v1")
        if path == "/cachedContents":
            return ("create", "") if method == "POST" else ("list", "") if method == "GET" else None
        match = re.fullmatch(r"/(cachedContents/[^/:]+)", path)
        if match:
            kinds = {"GET": "get", "PATCH": "update", "DELETE": "delete"}
            return (kinds[method], match.group(1)) if method in kinds else None
        match = re.fullmatch(r"/models/([^/:]+):(generateContent|streamGenerateContent)", path)
        if match and method == "POST":
            kind = "generate" if match.group(2) == "generateContent" else "stream"
            return kind, match.group(1)
        match = re.fullmatch(r"/models/([^/:]+)", path)
        if match and method == "GET":
            return "model", match.group(1)
        return None

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"error": {"code": status, "message": message, "status": code}}

    def _resource(self, cache: Cache) -> dict[str, Any]:
        return {
            "name": cache.name,
            "model": f"models/{cache.model}",
            "displayName": cache.display_name,
            "createTime": _rfc3339(cache.create_time),
            "updateTime": _rfc3339(cache.update_time or cache.create_time),
            "expireTime": _rfc3339(cache.expire_time),
            "usageMetadata": {"totalTokenCount": cache.tokens},
        }

    def _live(self, name: str) -> Cache | None:
        cache = self.caches.get(name)
        if cache is None or cache.expire_time <= self.clock():
            self.caches.pop(name, None)
            return None
        return cache

    def _create(self, _: str, query: Any, body: dict[str, Any]) -> Any:
        model = str(body.get("model", "")).removeprefix("models/")
        if not model:
            return (*self._error(400, "INVALID_ARGUMENT", "model is required"), None)
        cached = {
            k: body[k]
            for k in ("contents", "systemInstruction", "tools", "toolConfig")
            if k in body
        }
        tokens = count_tokens(cached)
        minimum = self.min_tokens.get(model, self.min_tokens_default)
        if tokens < minimum:
            message = (
                f"Cached content is too small. total_token_count={tokens}, "
                f"min_total_token_count={minimum}"
            )
            return (*self._error(400, "INVALID_ARGUMENT", message), None)
        if self.create_latency:
            time.sleep(self.create_latency)
        now = self.clock()
        if "expireTime" in body:
            expire = _parse_rfc3339(body["expireTime"])
        else:
            expire = now + _duration(body.get("ttl", "3600s"))
        cache = Cache(
            name=f"cachedContents/{uuid.uuid4().hex[:16]}",
            model=model,
            display_name=str(body.get("displayName", "")),
            body=cached,
            tokens=tokens,
            create_time=now,
            expire_time=expire,
        )
        with self._lock:
            self.caches[cache.name] = cache
        return 200, self._resource(cache), None

    def _get(self, name: str, query: Any, body: Any) -> Any:
        with self._lock:
            cache = self._live(name)
        if cache is None:
            return (*self._error(403, "PERMISSION_DENIED", NOT_FOUND_MESSAGE), None)
        return 200, self._resource(cache), None

    def _update(self, name: str, query: Any, body: dict[str, Any]) -> Any:
        with self._lock:
            cache = self._live(name)
            if cache is None:
                return (*self._error(403, "PERMISSION_DENIED", NOT_FOUND_MESSAGE), None)
            now = self.clock()
            if "expireTime" in body:
                cache.expire_time = _parse_rfc3339(body["expireTime"])
            elif "ttl" in body:
                cache.expire_time = now + _duration(body["ttl"])
            cache.update_time = now
            return 200, self._resource(cache), None

    def _delete(self, name: str, query: Any, body: Any) -> Any:
        with self._lock:
            cache = self._live(name)
            if cache is None:
                return (*self._error(403, "PERMISSION_DENIED", NOT_FOUND_MESSAGE), None)
            del self.caches[name]
        return 200, {}, None

    def _list(self, _: str, query: dict[str, list[str]], body: Any) -> Any:
        size = int(query.get("pageSize", ["10"])[0])
        start = int(query.get("pageToken", ["0"])[0] or 0)
        with self._lock:
            live = [c for c in list(self.caches) if self._live(c) is not None]
            page = [self._resource(self.caches[n]) for n in live[start : start + size]]
        reply: dict[str, Any] = {"cachedContents": page} if page else {}
        if start + size < len(live):
            reply["nextPageToken"] = str(start + size)
        return 200, reply, None

    def _model(self, model: str, query: Any, body: Any) -> Any:
        return (
            200,
            {
                "name": f"models/{model}",
                "inputTokenLimit": 1_000_000,
                "outputTokenLimit": 8192,
                "supportedGenerationMethods": ["generateContent", "createCachedContent"],
            },
            None,
        )

    def _answer(self, model: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("cachedContent")
        prompt_tokens = count_tokens(body.get("contents", []))
        cached_tokens = 0
        context: dict[str, Any] = {}
        if name:
            if any(k in body for k in ("systemInstruction", "tools", "toolConfig")):
                return self._error(400, "INVALID_ARGUMENT", CONFLICT_MESSAGE)
            with self._lock:
                cache = self._live(name)
            if cache is None:
                return self._error(403, "PERMISSION_DENIED", NOT_FOUND_MESSAGE)
            if cache.model != model:
                message = f"Model used by GenerateContent request ({model}) and CachedContent ({cache.model}) has to be the same."
                return self._error(400, "INVALID_ARGUMENT", message)
            cached_tokens = cache.tokens
            context = cache.body
        else:
            context = {k: body[k] for k in ("systemInstruction", "tools") if k in body}
        if self.latency:
            time.sleep(self.latency)
        context_tokens = count_tokens(context)
        text = f"answer from {model} with {context_tokens} context tokens"
        usage = {
            "promptTokenCount": prompt_tokens + context_tokens,
            "candidatesTokenCount": len(text.split()),
            "totalTokenCount": prompt_tokens + context_tokens + len(text.split()),
        }
        if cached_tokens:
            usage["cachedContentTokenCount"] = cached_tokens
        return 200, {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": model,
        }

    def _generate(self, model: str, query: Any, body: dict[str, Any]) -> Any:
        status, payload = self._answer(model, body)
        return status, payload, None

    def _stream(self, model: str, query: Any, body: dict[str, Any]) -> Any:
        status, payload = self._answer(model, body)
        if status != 200:
            return status, payload, None
        text = payload["candidates"][0]["content"]["parts"][0]["text"]
        words = text.split(" ")
        chunks = []
        for i, word in enumerate(words):
            last = i == len(words) - 1
            chunk: dict[str, Any] = {
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [{"text": word + ("" if last else " ")}],
                        },
                        "index": 0,
                        **({"finishReason": "STOP"} if last else {}),
                    }
                ],
                "modelVersion": model,
            }
            if last:
                chunk["usageMetadata"] = payload["usageMetadata"]
            chunks.append(chunk)
        return 200, payload, chunks


# -- for the tests ---------------------------------------------------------------------------
MODEL = "gemini-test-flash"  # not in the first-guess table: the fake's minimum decides
DOCUMENT = " ".join(f"word{i}" for i in range(200))  # 200 tokens for the fake


def make_client(url: str) -> Any:
    """A real google-genai client talking to the fake at ``url`` (no retries)."""
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key="fake-key",
        http_options=types.HttpOptions(
            base_url=url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
