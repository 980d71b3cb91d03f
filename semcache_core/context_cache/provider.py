"""Gemini explicit context caches through the official ``google-genai`` client.

:class:`GeminiProvider` wraps a ``genai.Client`` (Gemini API or Vertex AI): ``client.caches``
for the sync methods, ``client.aio.caches`` for the async ones. It turns a
:class:`~semcache_core.context_cache.spec.ContextSpec` into a ``CreateCachedContentConfig``
and every client error into a classified
:class:`~semcache_core.context_cache.errors.ProviderError`. No policy lives here: the
registry decides what to create, refresh, delete and when to go inline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from semcache_core.context_cache.errors import classify
from semcache_core.context_cache.spec import ContextSpec


@dataclass(frozen=True)
class RemoteCache:
    """A provider cache as the provider describes it (times in seconds since the epoch)."""

    name: str
    model: str
    display_name: str
    expire_time: float
    tokens: int


#: What ``list``/``alist`` return (``list`` is also a method name inside the class).
RemoteCaches = list[RemoteCache]


def _ttl(seconds: float) -> str:
    return f"{max(1, round(seconds))}s"


class GeminiProvider:
    """Context caches of one ``google.genai.Client`` (sync via ``client``, async via ``client.aio``)."""

    def __init__(self, client: Any) -> None:
        if not hasattr(client, "caches") or not hasattr(client, "aio"):
            raise TypeError(
                "GeminiProvider needs a google.genai.Client, got "
                f"{type(client).__module__}.{type(client).__name__}"
            )
        self.client = client

    @property
    def scope(self) -> str:
        """Endpoint, project, location and API version: a cache exists only there."""
        api = getattr(self.client, "_api_client", None)
        options = getattr(api, "_http_options", None)
        parts = [
            "gemini",
            "vertex" if getattr(api, "vertexai", False) else "developer",
            str(getattr(options, "base_url", "") or ""),
            str(getattr(options, "api_version", "") or ""),
            str(getattr(api, "project", "") or ""),
            str(getattr(api, "location", "") or ""),
        ]
        return "|".join(parts)

    # -- conversions -------------------------------------------------------------------------
    @staticmethod
    def _config(spec: ContextSpec, ttl: float, display_name: str) -> Any:
        from google.genai import types

        contents: list[Any] = []
        loose: list[Any] = []
        for item in spec.contents:
            if isinstance(item, str):
                loose.append(types.Part.from_text(text=item))
            elif isinstance(item, types.Part):
                loose.append(item)
            elif isinstance(item, dict) and "parts" not in item:
                loose.append(types.Part.model_validate(item))
            else:
                if loose:
                    contents.append(types.Content(role="user", parts=loose))
                    loose = []
                contents.append(
                    item if isinstance(item, types.Content) else types.Content.model_validate(item)
                )
        if loose:
            contents.append(types.Content(role="user", parts=loose))
        return types.CreateCachedContentConfig(
            contents=contents or None,
            system_instruction=spec.system_instruction,
            tools=list(spec.tools) or None,
            tool_config=spec.tool_config,
            ttl=_ttl(ttl),
            display_name=display_name,
        )

    @staticmethod
    def _remote(cached: Any) -> RemoteCache:
        expire = getattr(cached, "expire_time", None)
        usage = getattr(cached, "usage_metadata", None)
        return RemoteCache(
            name=str(cached.name),
            model=str(getattr(cached, "model", "") or "").removeprefix("models/"),
            display_name=str(getattr(cached, "display_name", "") or ""),
            expire_time=expire.timestamp() if expire is not None else 0.0,
            tokens=int(getattr(usage, "total_token_count", 0) or 0),
        )

    @staticmethod
    def _update_config(ttl: float) -> Any:
        from google.genai import types

        return types.UpdateCachedContentConfig(ttl=_ttl(ttl))

    # -- sync --------------------------------------------------------------------------------
    def create(self, spec: ContextSpec, ttl: float, display_name: str) -> RemoteCache:
        config = self._config(spec, ttl, display_name)
        try:
            return self._remote(self.client.caches.create(model=spec.model, config=config))
        except Exception as exc:
            raise classify(exc, "caches.create") from exc

    def update(self, name: str, ttl: float) -> RemoteCache:
        try:
            return self._remote(
                self.client.caches.update(name=name, config=self._update_config(ttl))
            )
        except Exception as exc:
            raise classify(exc, "caches.update") from exc

    def delete(self, name: str) -> None:
        try:
            self.client.caches.delete(name=name)
        except Exception as exc:
            raise classify(exc, "caches.delete") from exc

    def list(self) -> RemoteCaches:
        try:
            return [self._remote(c) for c in self.client.caches.list(config={"page_size": 100})]
        except Exception as exc:
            raise classify(exc, "caches.list") from exc

    # -- async -------------------------------------------------------------------------------
    async def acreate(self, spec: ContextSpec, ttl: float, display_name: str) -> RemoteCache:
        config = self._config(spec, ttl, display_name)
        try:
            return self._remote(
                await self.client.aio.caches.create(model=spec.model, config=config)
            )
        except Exception as exc:
            raise classify(exc, "caches.create") from exc

    async def aupdate(self, name: str, ttl: float) -> RemoteCache:
        try:
            cached = await self.client.aio.caches.update(name=name, config=self._update_config(ttl))
            return self._remote(cached)
        except Exception as exc:
            raise classify(exc, "caches.update") from exc

    async def adelete(self, name: str) -> None:
        try:
            await self.client.aio.caches.delete(name=name)
        except Exception as exc:
            raise classify(exc, "caches.delete") from exc

    async def alist(self) -> RemoteCaches:
        try:
            pager = await self.client.aio.caches.list(config={"page_size": 100})
            return [self._remote(c) async for c in pager]
        except Exception as exc:
            raise classify(exc, "caches.list") from exc


def cached_tokens_of(response: Any) -> int:
    """``usage_metadata.cached_content_token_count`` of a google-genai response (0 if none)."""
    usage = getattr(response, "usage_metadata", None)
    return int(getattr(usage, "cached_content_token_count", 0) or 0)


__all__ = ["GeminiProvider", "RemoteCache", "cached_tokens_of"]
