"""A LlamaIndex LLM with an exact or semantic response cache in front, on any backend.

:class:`CachedLLM` wraps any LlamaIndex ``LLM`` and is one itself, so it drops into
``Settings.llm``, ``index.as_query_engine(llm=...)``, chat engines and agents. Every entry point
(``complete``, ``chat``, their async and streaming forms, and through them ``predict``,
``structured_predict``, ``chat_with_tools`` ...) is served by the core's
:class:`~semcache_core.ResponseCache`; a miss calls the wrapped LLM and stores its answer.

What a cached answer is keyed by (the *scope*, see ``_messages.llm_scope``): the wrapped LLM's
class, its parameters (``model_dump()`` minus callbacks, clients and secret-looking fields), its
``metadata``, and the call's keyword arguments (tools, ``tool_choice``...), as sorted JSON; and
the prompt: for ``complete`` the prompt string (plus the ``formatted`` flag), for ``chat`` the
whole message list. A semantic match (when ``embeddings`` are given) compares only the last user
message; the system prompt, earlier turns and tool content must be identical.

Streaming: a cached answer is replayed to streaming callers as one chunk (``delta`` = the whole
text, ``text``/``message`` cumulative as usual). A streamed answer is stored once the stream
has been consumed to its end without error; a stream abandoned or failed midway stores nothing.

Callbacks and instrumentation events come from the wrapped LLM, so they fire for real model
calls only (token counters count what is paid for). Callers whose arguments have no canonical
JSON form (e.g. a Python class as ``response_format``, image bytes in an ``IOBase``) are passed
through to the wrapped LLM uncached.
"""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from functools import partial
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SerializeAsAny
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection
from llama_index.core.prompts.base import BasePromptTemplate

from llamaindex_semcache._messages import (
    Uncacheable,
    chat_from_json,
    chat_prompt,
    chat_to_json,
    completion_from_json,
    completion_to_json,
    count_tokens,
    llm_scope,
)
from llamaindex_semcache.embedding import LlamaIndexEmbedder
from semcache_core import DEFAULT_DISTANCE_THRESHOLD, Backend, CacheEntry, Prompt, ResponseCache
from semcache_core.conversation.match import DEFAULT_CONTEXT_MATCH, ContextMatch
from semcache_core.embedder import Embedder
from semcache_core.engine import ResponseCodec
from semcache_core.explain import Explanation
from semcache_core.resilience import ErrorPolicy
from semcache_core.scope import ScopeFields

logger = logging.getLogger("semcache")

Key = tuple[str, Prompt]


def _replay_completion(response: CompletionResponse) -> CompletionResponseGen:
    yield response.model_copy(update={"delta": response.text})


async def _areplay_completion(response: CompletionResponse) -> CompletionResponseAsyncGen:
    yield response.model_copy(update={"delta": response.text})


def _replay_chat(response: ChatResponse) -> ChatResponseGen:
    yield response.model_copy(update={"delta": response.message.content or ""})


async def _areplay_chat(response: ChatResponse) -> ChatResponseAsyncGen:
    yield response.model_copy(update={"delta": response.message.content or ""})


def _encoder(to_json: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any] | None]:
    def encode(response: Any) -> dict[str, Any] | None:
        try:
            return to_json(response)
        except Uncacheable as exc:
            logger.debug("semcache: response not cached: %s", exc)
            return None

    return encode


def _not_stored(stream: Any) -> None:
    return None  # a stream is stored by _recorded once it was consumed to its end


def _replaying(
    from_json: Callable[[dict[str, Any]], Any], replay: Callable[[Any], Any]
) -> Callable[[dict[str, Any]], Any]:
    def decode(value: dict[str, Any]) -> Any:
        response = from_json(value)
        return None if response is None else replay(response)

    return decode


COMPLETION = ResponseCodec(_encoder(completion_to_json), completion_from_json, count_tokens)
CHAT = ResponseCodec(_encoder(chat_to_json), chat_from_json, count_tokens)
# Streams: a hit is replayed as one chunk; a miss is stored when its stream ends.
COMPLETION_STREAM = ResponseCodec(_not_stored, _replaying(completion_from_json, _replay_completion))
COMPLETION_ASTREAM = ResponseCodec(
    _not_stored, _replaying(completion_from_json, _areplay_completion)
)
CHAT_STREAM = ResponseCodec(_not_stored, _replaying(chat_from_json, _replay_chat))
CHAT_ASTREAM = ResponseCodec(_not_stored, _replaying(chat_from_json, _areplay_chat))


class CachedLLM(FunctionCallingLLM):
    """Any LlamaIndex LLM, served from an exact or semantic cache.

    Args:
        llm: the LlamaIndex ``LLM`` to wrap (``OpenAI``, ``Anthropic``, a ``CustomLLM`` ...).
        backend: ``None`` (in-process), a URL (``"sqlite:///cache.db"``, ``"redis://..."``,
            ``"elasticsearch+https://..."``), a redis/Elasticsearch client or a ``Backend``.
        namespace: isolates this cache; ``clear()`` removes only this namespace.
        embeddings: a LlamaIndex ``BaseEmbedding`` (or a semcache ``Embedder``) to serve
            paraphrases too; ``None`` (default) caches exact prompts only.
        distance_threshold: cosine distance under which a paraphrase is served (semantic
            only); see :data:`semcache_core.DEFAULT_DISTANCE_THRESHOLD`.
        ttl: seconds an entry lives (``None`` = forever).
        trap_guard: reject near matches that differ in negation, numbers, names... (semantic).
        verifier: (semantic) a callable ``(new, cached) -> bool``, a LlamaIndex LLM or
            LangChain chat model used as a yes/no judge, or a ``semcache_core.verifier.
            Verifier``: asked about candidates the threshold and the guard passed; fails
            closed, caches its verdicts (see ``semcache_core.ResponseCache``).
        context_match: (semantic, chats) ``"semantic"`` (default): the earlier user and
            assistant turns are compared by meaning and by their facts (numbers, dates, names,
            what "it" refers to), the system prompt, tools and non-text parts exactly;
            ``"exact"``: every earlier message must be identical (see the README,
            "Multi-turn conversations").
        filterable_fields: the cache scope fields this cache is partitioned by (e.g.
            ``["tenant", "user"]``): inside ``with cache_scope(tenant=..., user=...)`` every
            call is served from and stored in that scope only (see the README, "Scopes").
        on_backend_error: ``"warn"`` (default: a failing backend is a miss) or ``"raise"``.

    ``metadata``, prompt formatting and any attribute this class does not define are those of
    the wrapped LLM. Function calling (``chat_with_tools``, ``get_tool_calls_from_response``)
    is delegated to the wrapped LLM when it is a ``FunctionCallingLLM``; the tool schemas it
    passes to ``chat`` are part of the scope, and tool-call blocks are cached with the answer.
    """

    llm: SerializeAsAny[LLM] = Field(exclude=True, description="The wrapped LLM.")
    _cache: ResponseCache = PrivateAttr()

    def __init__(
        self,
        llm: LLM,
        backend: Backend | str | Any | None = None,
        *,
        namespace: str = "semcache-llm",
        embeddings: BaseEmbedding | Embedder | None = None,
        distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD,
        ttl: float | None = None,
        trap_guard: bool = True,
        verifier: Any = None,
        context_match: ContextMatch = DEFAULT_CONTEXT_MATCH,
        filterable_fields: Sequence[str] | None = None,
        on_backend_error: ErrorPolicy = "warn",
    ) -> None:
        if not isinstance(llm, LLM):
            raise TypeError(f"llm must be a llama_index.core.llms.LLM, got {type(llm).__name__}")
        embedder: Embedder | None
        if embeddings is None:
            embedder = None
        elif isinstance(embeddings, BaseEmbedding):
            embedder = LlamaIndexEmbedder(embeddings)
        elif isinstance(embeddings, Embedder):
            embedder = embeddings
        else:
            raise TypeError(
                "embeddings must be a LlamaIndex BaseEmbedding or a semcache Embedder, "
                f"got {type(embeddings).__name__}"
            )
        super().__init__(
            llm=llm,
            callback_manager=llm.callback_manager,
            system_prompt=llm.system_prompt,
            messages_to_prompt=llm.messages_to_prompt,
            completion_to_prompt=llm.completion_to_prompt,
            output_parser=llm.output_parser,
            pydantic_program_mode=llm.pydantic_program_mode,
            query_wrapper_prompt=llm.query_wrapper_prompt,
        )
        self._cache = ResponseCache(
            backend,
            namespace=namespace,
            ttl=ttl,
            embedder=embedder,
            distance_threshold=distance_threshold,
            trap_guard=trap_guard,
            verifier=verifier,
            context_match=context_match,
            filterable_fields=filterable_fields,
            on_backend_error=on_backend_error,
        )

    @classmethod
    def class_name(cls) -> str:
        return "SemcacheCachedLLM"

    # -- delegation ----------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        # Settings and engines hand the LLM their callback manager; the wrapped LLM is the one
        # that emits events, so it must get it too.
        if name == "callback_manager" and "llm" in self.__dict__:
            self.llm.callback_manager = value

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            llm = self.__dict__.get("llm")
            if llm is None or name.startswith("_"):
                raise
            return getattr(llm, name)

    @property
    def metadata(self) -> LLMMetadata:
        return self.llm.metadata

    def _get_prompt(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        return self.llm._get_prompt(prompt, **prompt_args)

    def _get_messages(self, prompt: BasePromptTemplate, **prompt_args: Any) -> list[ChatMessage]:
        return self.llm._get_messages(prompt, **prompt_args)

    def _parse_output(self, output: str) -> str:
        return self.llm._parse_output(output)

    def _function_calling_llm(self) -> FunctionCallingLLM:
        if not isinstance(self.llm, FunctionCallingLLM):
            raise TypeError(
                f"the wrapped LLM ({type(self.llm).__name__}) does not support function calling"
            )
        return self.llm

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        return self._function_calling_llm()._prepare_chat_with_tools_compat(
            tools,
            user_msg=user_msg,
            chat_history=chat_history,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            tool_required=tool_required,
            **kwargs,
        )

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[Any],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        return self._function_calling_llm()._validate_chat_with_tools_response(
            response, tools, allow_parallel_tool_calls=allow_parallel_tool_calls, **kwargs
        )

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        return self._function_calling_llm().get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )

    # -- keys and bodies -----------------------------------------------------------------------
    def _completion_key(self, prompt: Any, formatted: bool, kwargs: dict[str, Any]) -> Key | None:
        try:
            if not isinstance(prompt, str):
                raise Uncacheable(f"prompt must be a str, got {type(prompt).__name__}")
            scope = llm_scope(self.llm, "complete", kwargs, formatted=bool(formatted))
            return scope, Prompt.plain(prompt)
        except Uncacheable as exc:
            logger.debug("semcache: completion passed through uncached: %s", exc)
            return None

    def _chat_key(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Key | None:
        try:
            return llm_scope(self.llm, "chat", kwargs), chat_prompt(messages)
        except Uncacheable as exc:
            logger.debug("semcache: chat passed through uncached: %s", exc)
            return None

    # A stream is stored when it was consumed, maybe outside the cache_scope it was asked
    # in: it is stored under the scope fields captured when it was asked (``fields``).
    def _recorded(
        self,
        stream: Generator[Any, None, None],
        key: Key,
        codec: ResponseCodec[Any],
        fields: ScopeFields,
    ) -> Generator[Any, None, None]:
        last = None
        for item in stream:  # an error propagates: nothing is stored
            last = item
            yield item
        if last is not None:  # only reached when the caller consumed the whole stream
            self._cache.store_response(*key, last, codec, fields=fields)

    async def _arecorded(
        self,
        stream: AsyncIterator[Any],
        key: Key,
        codec: ResponseCodec[Any],
        fields: ScopeFields,
    ) -> AsyncGenerator[Any, None]:
        last = None
        async for item in stream:
            last = item
            yield item
        if last is not None:
            await self._cache.astore_response(*key, last, codec, fields=fields)

    # -- completion: each form is one read-through (ResponseCache.get_or_create) ------------------
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        key = self._completion_key(prompt, formatted, kwargs)
        call = partial(self.llm.complete, prompt, formatted=formatted, **kwargs)
        return call() if key is None else self._cache.get_or_create(*key, call, COMPLETION)

    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        key = self._completion_key(prompt, formatted, kwargs)
        call = partial(self.llm.acomplete, prompt, formatted=formatted, **kwargs)
        return await (call() if key is None else self._cache.aget_or_create(*key, call, COMPLETION))

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        key = self._completion_key(prompt, formatted, kwargs)
        call = partial(self.llm.stream_complete, prompt, formatted=formatted, **kwargs)
        if key is None:
            return call()
        fields = self._cache.scope_fields()
        return self._cache.get_or_create(
            *key,
            lambda: self._recorded(call(), key, COMPLETION, fields),
            COMPLETION_STREAM,
            fields=fields,
        )

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        key = self._completion_key(prompt, formatted, kwargs)
        call = partial(self.llm.astream_complete, prompt, formatted=formatted, **kwargs)
        if key is None:
            return await call()
        fields = self._cache.scope_fields()

        async def create() -> CompletionResponseAsyncGen:
            return self._arecorded(await call(), key, COMPLETION, fields)

        return await self._cache.aget_or_create(*key, create, COMPLETION_ASTREAM, fields=fields)

    # -- chat ----------------------------------------------------------------------------------
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        key = self._chat_key(messages, kwargs)
        call = partial(self.llm.chat, messages, **kwargs)
        return call() if key is None else self._cache.get_or_create(*key, call, CHAT)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        key = self._chat_key(messages, kwargs)
        call = partial(self.llm.achat, messages, **kwargs)
        return await (call() if key is None else self._cache.aget_or_create(*key, call, CHAT))

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        key = self._chat_key(messages, kwargs)
        call = partial(self.llm.stream_chat, messages, **kwargs)
        if key is None:
            return call()
        fields = self._cache.scope_fields()
        return self._cache.get_or_create(
            *key, lambda: self._recorded(call(), key, CHAT, fields), CHAT_STREAM, fields=fields
        )

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        key = self._chat_key(messages, kwargs)
        call = partial(self.llm.astream_chat, messages, **kwargs)
        if key is None:
            return await call()
        fields = self._cache.scope_fields()

        async def create() -> ChatResponseAsyncGen:
            return self._arecorded(await call(), key, CHAT, fields)

        return await self._cache.aget_or_create(*key, create, CHAT_ASTREAM, fields=fields)

    # -- explain -------------------------------------------------------------------------------
    def _explained_key(
        self, prompt_or_messages: str | Sequence[ChatMessage], formatted: bool, kwargs: Any
    ) -> Key:
        if isinstance(prompt_or_messages, str):
            key = self._completion_key(prompt_or_messages, formatted, kwargs)
        else:
            key = self._chat_key(list(prompt_or_messages), kwargs)
        if key is None:
            raise TypeError("this call is passed through uncached (see the debug log): no entry")
        return key

    def explain(
        self,
        prompt_or_messages: str | Sequence[ChatMessage],
        *,
        k: int = 5,
        formatted: bool = False,
        **kwargs: Any,
    ) -> Explanation:
        """Why ``complete(prompt)`` (a string) or ``chat(messages)`` (with the same keyword
        arguments) would hit or miss, without writing or counting a lookup
        (:mod:`semcache_core.explain`); ``print()`` it for a table."""
        key = self._explained_key(prompt_or_messages, formatted, kwargs)
        return self._cache.explain(*key, k=k)

    async def aexplain(
        self,
        prompt_or_messages: str | Sequence[ChatMessage],
        *,
        k: int = 5,
        formatted: bool = False,
        **kwargs: Any,
    ) -> Explanation:
        key = self._explained_key(prompt_or_messages, formatted, kwargs)
        return await self._cache.aexplain(*key, k=k)

    # -- operator controls (semcache_core.controls) ---------------------------------------------
    def entries(
        self, *, filters: Mapping[str, str] | None = None, limit: int | None = None
    ) -> Iterator[CacheEntry]:
        """The cached entries of this namespace (an iterator of ``CacheEntry``)."""
        return self._cache.entries(filters=filters, limit=limit)

    def aentries(
        self, *, filters: Mapping[str, str] | None = None, limit: int | None = None
    ) -> AsyncIterator[CacheEntry]:
        return self._cache.aentries(filters=filters, limit=limit)

    def entry(self, entry_id: str) -> CacheEntry | None:
        return self._cache.entry(entry_id)

    async def aentry(self, entry_id: str) -> CacheEntry | None:
        return await self._cache.aentry(entry_id)

    def drop(self, ids: Sequence[str]) -> None:
        """Remove the entries ``ids`` (from ``entries()`` or ``explain()``)."""
        self._cache.drop(ids)

    async def adrop(self, ids: Sequence[str]) -> None:
        await self._cache.adrop(ids)

    def drop_prompt(
        self,
        prompt_or_messages: str | Sequence[ChatMessage],
        *,
        formatted: bool = False,
        **kwargs: Any,
    ) -> str | None:
        """Remove the entry ``complete(prompt)`` or ``chat(messages)`` (same keyword
        arguments) would be served now; its id, or ``None`` when the call would miss."""
        return self._cache.drop_prompt(*self._explained_key(prompt_or_messages, formatted, kwargs))

    async def adrop_prompt(
        self,
        prompt_or_messages: str | Sequence[ChatMessage],
        *,
        formatted: bool = False,
        **kwargs: Any,
    ) -> str | None:
        key = self._explained_key(prompt_or_messages, formatted, kwargs)
        return await self._cache.adrop_prompt(*key)

    def expire(self, ids: Sequence[str], ttl: float | None) -> None:
        """Let the entries ``ids`` expire ``ttl`` seconds from now (``None``: never)."""
        self._cache.expire(ids, ttl)

    async def aexpire(self, ids: Sequence[str], ttl: float | None) -> None:
        await self._cache.aexpire(ids, ttl)

    def set_ttl(self, ttl: float | None) -> None:
        """The lifetime of entries written from now on (``None``: forever)."""
        self._cache.set_ttl(ttl)

    def set_threshold(self, distance_threshold: float) -> None:
        """(Semantic) serve hits within ``distance_threshold`` from now on."""
        self._cache.set_threshold(distance_threshold)

    # -- cache management ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Exact/semantic hits, misses, guard rejections, distances, tokens saved (this
        process)."""
        return self._cache.stats_snapshot()

    def flush_stats(self) -> None:
        """Write this process's unflushed counters to the backend now."""
        self._cache.flush_stats()

    def clear(self) -> None:
        """Remove every entry of this cache's namespace (other namespaces are untouched)."""
        self._cache.clear()

    async def aclear(self) -> None:
        await self._cache.aclear()

    @property
    def cache(self) -> ResponseCache:
        return self._cache

    @property
    def backend(self) -> Backend:
        return self._cache.backend

    @property
    def namespace(self) -> str:
        return self._cache.namespace

    @property
    def distance_threshold(self) -> float:
        return self._cache.distance_threshold
