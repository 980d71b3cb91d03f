"""Which provider errors mean what to the registry, without importing the provider's client.

google-genai raises ``google.genai.errors.APIError`` subclasses carrying the HTTP ``code``, the
API ``status`` and ``message``; framework wrappers (LangChain's ``ChatGoogleGenerativeAIError``)
chain them as ``__cause__``. :func:`api_error` finds one in the chain.

* **refused cache**: 404 NOT_FOUND, 403 PERMISSION_DENIED (what the Gemini API answers for a
  deleted or expired cache: "CachedContent not found (or permission denied)") and 400
  FAILED_PRECONDITION (a cache in an invalid state). The registry invalidates the cache,
  recreates it once and retries the call once.
* **too small**: 400 INVALID_ARGUMENT "Cached content is too small. total_token_count=N,
  min_total_token_count=M" (Gemini API) or "The cached content is of N tokens. The minimum
  token count to start caching is M." (Vertex AI). The registry remembers it and sends the
  context inline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from semcache_core.errors import SemcacheError

_TOO_SMALL = (
    re.compile(
        r"too small.*?total_token_count\D*(\d+).*?min_total_token_count\D*(\d+)", re.I | re.S
    ),
    re.compile(r"cached content is of (\d+) tokens.*?minimum token count[^\d]*(\d+)", re.I | re.S),
)


class ProviderError(SemcacheError):
    """A provider cache operation failed; ``kind`` says what the registry does about it."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        code: int | None = None,
        tokens: int | None = None,
        min_tokens: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind  # "refused", "too_small" or "failed"
        self.code = code
        self.tokens = tokens
        self.min_tokens = min_tokens


@dataclass(frozen=True)
class APIErrorInfo:
    code: int
    status: str
    message: str


def api_error(exc: BaseException | None) -> APIErrorInfo | None:
    """The google-genai API error in ``exc`` or its cause/context chain, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code: Any = getattr(exc, "code", None)
        if isinstance(code, int) and type(exc).__module__.startswith("google."):
            status = str(getattr(exc, "status", "") or "")
            return APIErrorInfo(code, status, str(getattr(exc, "message", "") or exc))
        exc = exc.__cause__ or exc.__context__
    return None


def is_refused_cache(exc: BaseException) -> bool:
    """True if ``exc`` says the cached content is gone or unusable (see the module docstring)."""
    info = api_error(exc)
    if info is None:
        return False
    return info.code in (403, 404) or (info.code == 400 and info.status == "FAILED_PRECONDITION")


def too_small(exc: BaseException) -> tuple[int, int] | None:
    """``(tokens, min_tokens)`` if ``exc`` is the provider's "context too small" error."""
    info = api_error(exc)
    if info is None or info.code != 400:
        return None
    for pattern in _TOO_SMALL:
        match = pattern.search(info.message)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def classify(exc: BaseException, what: str) -> ProviderError:
    """A :class:`ProviderError` for a failed cache operation ``what``."""
    info = api_error(exc)
    detail = (
        f"{info.code} {info.status}: {info.message}" if info else f"{type(exc).__name__}: {exc}"
    )
    message = f"Gemini {what} failed: {detail}"
    small = too_small(exc)
    if small is not None:
        return ProviderError(
            message, kind="too_small", code=400, tokens=small[0], min_tokens=small[1]
        )
    if is_refused_cache(exc):
        return ProviderError(message, kind="refused", code=info.code if info else None)
    return ProviderError(message, kind="failed", code=info.code if info else None)
