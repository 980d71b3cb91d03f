"""Gemini context caches for LlamaIndex's ``GoogleGenAI`` (``semcache[gemini]``).

:class:`GeminiContextCachedLLM` wraps a ``llama_index.llms.google_genai.GoogleGenAI`` and is an
``LLM`` itself (``Settings.llm = ...``). Every call (``complete``, ``chat``, their streaming and
async forms) gets the shared provider cache of the context given at construction (system
prompt, documents, tools) from :class:`~semcache_core.context_cache.ContextCacheRegistry`: with
a cache the request carries only ``cached_content`` and the conversation; without one (too
small, backend down, a wait that timed out) the system prompt, documents and tools go inline.
The registry holds all policy; this module only translates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SerializeAsAny
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM

from semcache_core.context_cache import (
    ContextCacheRegistry,
    ContextSpec,
    GeminiProvider,
    SweepReport,
)

__all__ = ["GeminiContextCachedLLM"]


def _cached_tokens(response: Any) -> int:
    raw = getattr(response, "raw", None) or {}
    usage = raw.get("usage_metadata") if isinstance(raw, dict) else None
    return int((usage or {}).get("cached_content_token_count") or 0)


def _document_text(document: Any) -> str:
    if isinstance(document, str):
        return document
    parts = getattr(document, "parts", None)
    if parts is not None:
        return "\n".join(_document_text(part) for part in parts)
    text = getattr(document, "text", None)
    if text is None:
        raise TypeError(
            "GeminiContextCachedLLM documents must be strings or google-genai Parts/Contents "
            f"with text, got {type(document).__module__}.{type(document).__name__}"
        )
    return str(text)


def _completion(response: ChatResponse) -> CompletionResponse:
    return CompletionResponse(
        text=response.message.content or "",
        delta=response.delta,
        raw=response.raw,
        additional_kwargs=response.additional_kwargs,
    )


class GeminiContextCachedLLM(LLM):
    """A ``GoogleGenAI`` LLM whose system prompt, documents and tools are a shared Gemini
    context cache.

    Args:
        llm: the ``GoogleGenAI`` to wrap.
        backend: where the registry lives (``"sqlite:///..."``, ``"redis://..."``, ...).
        client: the ``google.genai.Client`` that manages caches (default: ``llm``'s own).
        system_prompt, documents, tools: the cached context (documents: strings or
            google-genai ``Part``/``Content``; tools: LlamaIndex tools).
        namespace, ttl, registry_options: for :class:`ContextCacheRegistry`.
    """

    llm: SerializeAsAny[LLM] = Field(exclude=True, description="The wrapped GoogleGenAI.")
    _registry: ContextCacheRegistry = PrivateAttr()
    _spec: ContextSpec = PrivateAttr()
    _context_system: str | None = PrivateAttr(default=None)
    _documents: list[ChatMessage] = PrivateAttr(default_factory=list)
    _tool_kwargs: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(
        self,
        llm: LLM,
        backend: Any = None,
        *,
        client: Any = None,
        system_prompt: str | None = None,
        documents: Sequence[Any] = (),
        tools: Sequence[Any] = (),
        namespace: str = "semcache-context",
        ttl: float = 3600,
        **registry_options: Any,
    ) -> None:
        if not hasattr(llm, "_chat") or not hasattr(llm, "_prepare_chat_with_tools"):
            raise TypeError(
                "GeminiContextCachedLLM wraps a llama_index.llms.google_genai.GoogleGenAI, got "
                f"{type(llm).__module__}.{type(llm).__name__}"
            )
        super().__init__(llm=llm, callback_manager=llm.callback_manager)
        client = client if client is not None else llm._client
        self._registry = ContextCacheRegistry(
            backend,
            provider=GeminiProvider(client),
            namespace=namespace,
            ttl=ttl,
            **registry_options,
        )
        spec_tools: list[Any] = []
        tool_config = None
        if tools:
            prepared = llm._prepare_chat_with_tools(list(tools))
            self._tool_kwargs = {
                "tools": prepared["tools"],
                "tool_config": prepared["tool_config"],
            }
            spec_tools = list(prepared["tools"] or [])
            tool_config = prepared["tool_config"]
        self._spec = ContextSpec(
            llm.model,
            system_instruction=system_prompt,
            contents=list(documents),
            tools=spec_tools,
            tool_config=tool_config,
        )
        self._context_system = system_prompt
        self._documents = [
            ChatMessage(role=MessageRole.USER, content=_document_text(d)) for d in documents
        ]

    @classmethod
    def class_name(cls) -> str:
        return "SemcacheGeminiContextCachedLLM"

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "callback_manager" and "llm" in self.__dict__:
            self.llm.callback_manager = value

    @property
    def metadata(self) -> LLMMetadata:
        return self.llm.metadata

    @property
    def context_key(self) -> str:
        return self._registry.key(self._spec)

    # -- translating a call ------------------------------------------------------------------
    def _request(self, messages: Sequence[ChatMessage]) -> list[ChatMessage] | None:
        """Messages to send with the cache; None if the call has a system message of its own
        (the API refuses one next to a cache), which then goes inline."""
        rest = list(messages)
        if rest and rest[0].role == MessageRole.SYSTEM and rest[0].content == self._context_system:
            rest = rest[1:]
        if any(m.role == MessageRole.SYSTEM for m in rest):
            return None
        return rest

    def _arguments(
        self, messages: Sequence[ChatMessage], name: str | None, kwargs: dict[str, Any]
    ) -> tuple[list[ChatMessage], dict[str, Any]]:
        request = self._request(messages)
        if name and request is not None:
            config = {**kwargs.get("generation_config", {}), "cached_content": name}
            return request, {**kwargs, "generation_config": config}
        options = {**self._tool_kwargs, **kwargs}
        if request is None:  # the caller's own system message stays first
            head, rest = list(messages[:1]), list(messages[1:])
            if head and head[0].role != MessageRole.SYSTEM:
                head, rest = [], list(messages)
            return [*head, *self._documents, *rest], options
        system = (
            [ChatMessage(role=MessageRole.SYSTEM, content=self._context_system)]
            if self._context_system
            else []
        )
        return [*system, *self._documents, *request], options

    # -- chat --------------------------------------------------------------------------------
    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        def send(name: str | None) -> ChatResponse:
            sent, options = self._arguments(messages, name, kwargs)
            return self.llm._chat(sent, **options)  # type: ignore[attr-defined,no-any-return]

        if self._request(messages) is None:
            return send(None)
        return self._registry.call(self._spec, send, usage=_cached_tokens)

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        async def send(name: str | None) -> ChatResponse:
            sent, options = self._arguments(messages, name, kwargs)
            return await self.llm._achat(sent, **options)  # type: ignore[attr-defined,no-any-return]

        if self._request(messages) is None:
            return await send(None)
        return await self._registry.acall(self._spec, send, usage=_cached_tokens)

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def open_stream(name: str | None) -> Iterator[ChatResponse]:
            sent, options = self._arguments(messages, name, kwargs)
            return self.llm._stream_chat(sent, **options)  # type: ignore[attr-defined,no-any-return]

        if self._request(messages) is None:
            return open_stream(None)  # type: ignore[return-value]
        return self._registry.stream(self._spec, open_stream, usage=_cached_tokens)  # type: ignore[return-value]

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        def open_stream(name: str | None) -> Any:
            sent, options = self._arguments(messages, name, kwargs)
            return self.llm._astream_chat(sent, **options)  # type: ignore[attr-defined]

        if self._request(messages) is None:
            return await open_stream(None)  # type: ignore[no-any-return]
        return self._registry.astream(self._spec, open_stream, usage=_cached_tokens)  # type: ignore[return-value]

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    # -- complete (one user message) ---------------------------------------------------------
    @staticmethod
    def _as_chat(prompt: str) -> list[ChatMessage]:
        return [ChatMessage(role=MessageRole.USER, content=prompt)]

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return _completion(self._chat(self._as_chat(prompt), **kwargs))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return _completion(await self._achat(self._as_chat(prompt), **kwargs))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            for chunk in self._stream_chat(self._as_chat(prompt), **kwargs):
                yield _completion(chunk)

        return gen()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        chunks: AsyncIterator[ChatResponse] = await self._astream_chat(
            self._as_chat(prompt), **kwargs
        )

        async def gen() -> CompletionResponseAsyncGen:
            async for chunk in chunks:
                yield _completion(chunk)

        return gen()

    # -- the context's cache -----------------------------------------------------------------
    def release(self) -> bool:
        """Delete this context's provider cache and record (True if a cache was deleted)."""
        return self._registry.release(self._spec)

    async def arelease(self) -> bool:
        return await self._registry.arelease(self._spec)

    def stats(self) -> dict[str, Any]:
        return self._registry.stats()

    def sweep(self, *, delete_orphans: bool = False) -> SweepReport:
        return self._registry.sweep(delete_orphans=delete_orphans)
