"""Deterministic LlamaIndex stand-ins for paid models (no network, no model download)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.schema import BaseNode, TransformComponent

from semcache_core.testing import HashingEmbedder


class WordHashEmbedding(BaseEmbedding):
    """semcache_core.testing.HashingEmbedder as a LlamaIndex embedding: paraphrases land close.

    ``texts`` counts the texts embedded, ``batches`` the batched calls."""

    dim: int = 64
    texts: int = Field(default=0, exclude=True)
    batches: int = Field(default=0, exclude=True)

    def __init__(self, dim: int = 64, model_name: str = "word-hash-v1", **kwargs: Any) -> None:
        super().__init__(dim=dim, model_name=model_name, **kwargs)  # type: ignore[call-arg]

    def _vector(self, text: str) -> Embedding:
        self.texts += 1
        return HashingEmbedder(self.dim, name=self.model_name).vector(text)

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._vector(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        self.batches += 1
        return [self._vector(text) for text in texts]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._get_text_embeddings(texts)


def _last_line(prompt: str) -> str:
    lines = [line.strip() for line in prompt.splitlines()]
    lines = [line for line in lines if line and line != "assistant:"]
    return lines[-1] if lines else ""


class CountingLLM(CustomLLM):
    """Answers ``"<model>: answer #n to <last line of the prompt>"`` and counts its calls.

    Chat goes through ``complete`` (CustomLLM). ``fail_stream_at`` makes streams raise after
    that many chunks."""

    model_name: str = "counting-llm"
    temperature: float = 0.0
    calls: int = Field(default=0, exclude=True)
    fail_stream_at: int | None = Field(default=None, exclude=True)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model_name, num_output=64)

    def _answer(self, prompt: str) -> str:
        self.calls += 1
        return f"{self.model_name}: answer #{self.calls} to {_last_line(prompt)}"

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._answer(prompt), additional_kwargs={"total_tokens": 42})

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        text = self._answer(prompt)
        fail_at = self.fail_stream_at

        def gen() -> CompletionResponseGen:
            so_far = ""
            for i, word in enumerate(text.split(" ")):
                if fail_at is not None and i >= fail_at:
                    raise RuntimeError("the stream broke")
                delta = word if not so_far else " " + word
                so_far += delta
                yield CompletionResponse(text=so_far, delta=delta)

        return gen()


class ToolCallingLLM(FunctionCallingLLM):
    """A function-calling chat model: passes tools to ``chat`` as JSON schemas (as OpenAI's
    integration does) and answers with one tool-call block per tool."""

    model_name: str = "tool-llm"
    calls: int = Field(default=0, exclude=True)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            model_name=self.model_name, is_chat_model=True, is_function_calling_model=True
        )

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
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                user_msg if isinstance(user_msg, ChatMessage) else ChatMessage(content=user_msg)
            )
        return {
            "messages": messages,
            "tools": [tool.metadata.to_openai_tool() for tool in tools],
            **kwargs,
        }

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        return [
            ToolSelection(
                tool_id=block.tool_call_id or "",
                tool_name=block.tool_name,
                tool_kwargs=block.tool_kwargs if isinstance(block.tool_kwargs, dict) else {},
            )
            for block in response.message.blocks
            if isinstance(block, ToolCallBlock)
        ]

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.calls += 1
        blocks = [
            ToolCallBlock(
                tool_call_id=f"call-{self.calls}-{i}",
                tool_name=tool["function"]["name"],
                tool_kwargs={"question": messages[-1].content},
            )
            for i, tool in enumerate(kwargs.get("tools") or [])
        ]
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError

    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        raise NotImplementedError

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        raise NotImplementedError

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        raise NotImplementedError

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError


class CountingTransform(TransformComponent):
    """An ingestion transformation that upper-cases node text and counts its calls."""

    calls: int = Field(default=0, exclude=True)

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        self.calls += 1
        for node in nodes:
            node.set_content(node.get_content().upper())  # type: ignore[attr-defined]
        return nodes
