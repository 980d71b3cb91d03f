"""Gemini context caches for LangChain's ``ChatGoogleGenerativeAI`` (``semcache[gemini]``).

``GeminiContextCache(backend, client=genai.Client(...)).bind(chat_model, system=...,
documents=[...], tools=[...])`` returns a chat model (a ``Runnable``) that sends each request
with the shared provider cache of that context: the cached prefix (system instruction,
documents) and tools are stripped from the request and ``cached_content`` is passed, since the
API refuses a request that sets both. Without a cache (too small, backend down, a wait that
timed out) they are sent inline. All policy is :class:`~semcache_core.context_cache.
ContextCacheRegistry`'s; this module only translates.

Response caches (``ExactCache``/``SemanticCache`` through ``set_llm_cache`` or ``cache=``) see
an ``llm_string`` that names the *context key*, never the provider's cache name, so their
entries keep hitting after a cache is recreated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from semcache_core.context_cache import (
    ContextCacheRegistry,
    ContextSpec,
    GeminiProvider,
    SweepReport,
)

__all__ = ["GeminiContextBound", "GeminiContextCache"]


def _cached_tokens(output: Any) -> int:
    """``cache_read`` input tokens of a ChatResult or ChatGenerationChunk."""
    if isinstance(output, ChatResult):
        messages = [g.message for g in output.generations]
    else:
        messages = [getattr(output, "message", None)]
    total = 0
    for message in messages:
        usage = getattr(message, "usage_metadata", None) or {}
        total += int((usage.get("input_token_details") or {}).get("cache_read", 0) or 0)
    return total


def _inline_block(document: Any) -> list[dict[str, Any]]:
    """LangChain content blocks for a document (a string or a google-genai Part/Content)."""
    if isinstance(document, str):
        return [{"type": "text", "text": document}]
    parts = getattr(document, "parts", None)
    if parts is not None:  # a Content
        return [block for part in parts for block in _inline_block(part)]
    if getattr(document, "text", None) is not None:
        return [{"type": "text", "text": document.text}]
    file_data = getattr(document, "file_data", None)
    if file_data is not None:
        return [{"type": "media", "file_uri": file_data.file_uri, "mime_type": file_data.mime_type}]
    inline_data = getattr(document, "inline_data", None)
    if inline_data is not None:
        return [{"type": "media", "data": inline_data.data, "mime_type": inline_data.mime_type}]
    raise TypeError(
        "documents must be strings or google-genai Part/Content objects with text, file_data "
        f"or inline_data; got {type(document).__module__}.{type(document).__name__}"
    )


class GeminiContextCache:
    """A registry of Gemini context caches on ``backend`` for LangChain chat models.

    ``backend``: any :func:`semcache_core.connect` target; ``client``: the
    ``google.genai.Client`` that creates the caches (same API endpoint as the chat models).
    Other options go to :class:`~semcache_core.context_cache.ContextCacheRegistry`
    (``refresh_margin``, ``create_wait``, ``prices``, ...).
    """

    def __init__(
        self,
        backend: Any = None,
        *,
        client: Any,
        namespace: str = "semcache-context",
        ttl: float = 3600,
        **registry_options: Any,
    ) -> None:
        self.registry = ContextCacheRegistry(
            backend,
            provider=GeminiProvider(client),
            namespace=namespace,
            ttl=ttl,
            **registry_options,
        )

    def bind(
        self,
        chat_model: Any,
        *,
        system: str | None = None,
        documents: Sequence[Any] = (),
        tools: Sequence[Any] = (),
        **tool_options: Any,
    ) -> GeminiContextBound:
        """A chat model that sends ``chat_model``'s requests with this context cached.

        ``tools``: whatever ``chat_model.bind_tools`` accepts; ``tool_options`` (for example
        ``tool_choice``) go there too.
        """
        if not hasattr(chat_model, "_format_tools") or not hasattr(chat_model, "model"):
            raise TypeError(
                "GeminiContextCache.bind needs a langchain_google_genai.ChatGoogleGenerativeAI, "
                f"got {type(chat_model).__module__}.{type(chat_model).__name__}"
            )
        tool_kwargs: dict[str, Any] = {}
        spec_tools: list[Any] = []
        tool_config = None
        if tools:
            tool_kwargs = dict(chat_model.bind_tools(list(tools), **tool_options).kwargs)
            spec_tools = list(chat_model._format_tools(tool_kwargs["tools"]) or [])
            tool_config = chat_model._process_tool_config(
                tool_kwargs.get("tool_choice"), tool_kwargs.get("tool_config"), spec_tools
            )
        spec = ContextSpec(
            chat_model.model,
            system_instruction=system,
            contents=list(documents),
            tools=spec_tools,
            tool_config=tool_config,
        )
        inline: list[BaseMessage] = []
        if system:
            inline.append(SystemMessage(content=system))
        blocks = [block for document in documents for block in _inline_block(document)]
        if blocks:
            inline.append(HumanMessage(content=blocks))  # type: ignore[arg-type]
        bound = GeminiContextBound(model=chat_model)
        bound._setup(self, spec, inline, tool_kwargs, system)
        return bound

    def stats(self) -> dict[str, Any]:
        return self.registry.stats()

    def sweep(self, *, delete_orphans: bool = False) -> SweepReport:
        return self.registry.sweep(delete_orphans=delete_orphans)


class GeminiContextBound(BaseChatModel):
    """``ChatGoogleGenerativeAI`` with a shared context cache (made by
    :meth:`GeminiContextCache.bind`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any
    _cache: GeminiContextCache = PrivateAttr()
    _spec: ContextSpec = PrivateAttr()
    _key: str = PrivateAttr()
    _inline: list[BaseMessage] = PrivateAttr(default_factory=list)
    _tool_kwargs: dict[str, Any] = PrivateAttr(default_factory=dict)
    _system: str | None = PrivateAttr(default=None)

    def _setup(
        self,
        cache: GeminiContextCache,
        spec: ContextSpec,
        inline: list[BaseMessage],
        tool_kwargs: dict[str, Any],
        system: str | None,
    ) -> None:
        self._cache, self._spec, self._inline = cache, spec, inline
        self._tool_kwargs, self._system = tool_kwargs, system
        self._key = cache.registry.key(spec)

    @property
    def context_key(self) -> str:
        return self._key

    @property
    def _llm_type(self) -> str:
        return "semcache-gemini-context"

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        # The wrapped model's identity plus the context key: never the provider cache name.
        inner = self.model._get_llm_string(stop=stop, **kwargs)
        return f"{inner}---semcache_context={self._key}"

    # -- translating a call ------------------------------------------------------------------
    def _request(self, messages: list[BaseMessage]) -> list[BaseMessage] | None:
        """The messages to send with the cache, or None when the call must go inline (it
        carries a system message of its own, which the API refuses with a cache)."""
        rest = list(messages)
        if rest and isinstance(rest[0], SystemMessage) and rest[0].content == self._system:
            rest = rest[1:]
        if any(isinstance(m, SystemMessage) for m in rest):
            return None
        return rest

    def _arguments(
        self, messages: list[BaseMessage], name: str | None, kwargs: dict[str, Any]
    ) -> tuple[list[BaseMessage], dict[str, Any]]:
        request = self._request(messages)
        if name and request is not None:
            return request, {**kwargs, "cached_content": name}
        if request is None:
            request = list(messages)
        return [*self._inline, *request], {**self._tool_kwargs, **kwargs}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        def send(name: str | None) -> ChatResult:
            sent, options = self._arguments(messages, name, kwargs)
            return self.model._generate(sent, stop=stop, **options)  # type: ignore[no-any-return]

        if self._request(messages) is None:
            return send(None)
        return self._cache.registry.call(self._spec, send, usage=_cached_tokens)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        async def send(name: str | None) -> ChatResult:
            sent, options = self._arguments(messages, name, kwargs)
            return await self.model._agenerate(sent, stop=stop, **options)  # type: ignore[no-any-return]

        if self._request(messages) is None:
            return await send(None)
        return await self._cache.registry.acall(self._spec, send, usage=_cached_tokens)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        def open_stream(name: str | None) -> Iterator[ChatGenerationChunk]:
            sent, options = self._arguments(messages, name, kwargs)
            return self.model._stream(sent, stop=stop, **options)  # type: ignore[no-any-return]

        if self._request(messages) is None:
            chunks = open_stream(None)
        else:
            chunks = self._cache.registry.stream(self._spec, open_stream, usage=_cached_tokens)
        for chunk in chunks:
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        def open_stream(name: str | None) -> AsyncIterator[ChatGenerationChunk]:
            sent, options = self._arguments(messages, name, kwargs)
            return self.model._astream(sent, stop=stop, **options)  # type: ignore[no-any-return]

        if self._request(messages) is None:
            chunks = open_stream(None)
        else:
            chunks = self._cache.registry.astream(self._spec, open_stream, usage=_cached_tokens)
        async for chunk in chunks:
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    # -- the context's cache -----------------------------------------------------------------
    def release(self) -> bool:
        """Delete this context's provider cache and record (True if a cache was deleted)."""
        return self._cache.registry.release(self._spec)

    async def arelease(self) -> bool:
        return await self._cache.registry.arelease(self._spec)

    def stats(self) -> dict[str, Any]:
        return self._cache.stats()

    def sweep(self, *, delete_orphans: bool = False) -> SweepReport:
        return self._cache.sweep(delete_orphans=delete_orphans)
