"""LlamaIndex calls and responses to and from the core's plain terms.

* :func:`llm_scope`: the scope key of a call (wrapped LLM's class, parameters, metadata, the
  call's kwargs) as canonical JSON, or ``None`` when it cannot be made canonical (the call is
  then passed through uncached).
* :func:`chat_prompt`: a message list as a core :class:`~semcache_core.Prompt`: ``text`` is
  the canonical JSON of every message, ``query`` the text of the last user message,
  ``context`` everything else (system prompt, earlier and later turns, tool content, the
  non-text parts and kwargs of the last user message).
* ``*_to_json`` / ``*_from_json``: responses as plain JSON, rebuilt only as LlamaIndex
  ``CompletionResponse``/``ChatResponse``/``ChatMessage`` with text, thinking and tool-call
  blocks, from checked plain fields. Cached data is untrusted: anything else is a miss.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LogProb,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import BaseModel

from llamaindex_semcache._identity import class_path
from semcache_core import Prompt, Turn
from semcache_core.codecs import canonical_json

logger = logging.getLogger("semcache")

SCOPE_VERSION = 1
#: Parameters that never change what the model answers (or are secrets): left out of the scope
#: so that rotating an API key or raising a timeout keeps the cache.
_IGNORED_FIELDS = frozenset(
    {
        "callback_manager",
        "rate_limiter",
        "timeout",
        "max_retries",
        "reuse_client",
        "http_client",
        "async_http_client",
        "num_workers",
        "verbose",
        "messages_to_prompt",
        "completion_to_prompt",
        "output_parser",
        "query_wrapper_prompt",
    }
)
_SECRET_FIELD = re.compile(
    r"api_?key|secret|passw|credential|auth|token$|header|cookie|session", re.IGNORECASE
)


class Uncacheable(Exception):
    """The call or response has no canonical JSON form; it is passed through uncached."""


def _strict_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _strict_json(value: Any, what: str) -> str:
    try:
        return canonical_json(value, default=_strict_default)
    except (TypeError, ValueError) as exc:
        raise Uncacheable(f"{what} is not JSON-serializable: {exc}") from exc


def _scrub(value: Any) -> Any:
    """Drop secret-looking and operational keys, recursively."""
    if isinstance(value, Mapping):
        return {
            str(k): _scrub(v)
            for k, v in value.items()
            if str(k) not in _IGNORED_FIELDS and not _SECRET_FIELD.search(str(k))
        }
    if isinstance(value, (list, tuple)):
        return [_scrub(item) for item in value]
    return value


def _lenient_default(value: Any) -> Any:
    # For LLM parameters only: an object without JSON form is named by its repr, which at worst
    # differs between processes (a miss), never equal for different values of a sane type.
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(repr(item) for item in value)
    if isinstance(value, bytes):
        return value.hex()
    return f"<{type(value).__module__}.{type(value).__qualname__}: {value!r}>"


def llm_params(llm: Any) -> str:
    """The wrapped LLM's class, parameters and metadata, as canonical JSON."""
    try:
        params = llm.model_dump(exclude=set(_IGNORED_FIELDS))
    except Exception as exc:
        raise Uncacheable(f"cannot read the parameters of {class_path(llm)}: {exc}") from exc
    try:
        metadata = llm.metadata.model_dump(mode="json")
    except Exception as exc:
        raise Uncacheable(f"cannot read the metadata of {class_path(llm)}: {exc}") from exc
    body = {"class": class_path(llm), "params": _scrub(params), "metadata": metadata}
    return canonical_json(body, default=_lenient_default, allow_nan=True)


def llm_scope(
    llm: Any, call: str, kwargs: Mapping[str, Any], *, formatted: bool | None = None
) -> str:
    """Scope key of one call; raises :class:`Uncacheable` for non-JSON call kwargs."""
    kwargs_json = _strict_json(dict(kwargs), "a keyword argument of the call")
    return canonical_json(
        {
            "v": SCOPE_VERSION,
            "call": call,
            "formatted": formatted,
            "llm": llm_params(llm),
            "kwargs": kwargs_json,
        }
    )


# -- prompts -----------------------------------------------------------------------------------
def _message_json(message: Any) -> dict[str, Any]:
    if not isinstance(message, ChatMessage):
        raise Uncacheable(f"messages must be ChatMessage, got {type(message).__name__}")
    try:
        dumped: dict[str, Any] = message.model_dump(mode="json")
    except Exception as exc:
        raise Uncacheable(f"a message has no JSON form: {exc}") from exc
    _strict_json(dumped, "a message")
    return dumped


def chat_prompt(messages: Sequence[ChatMessage]) -> Prompt:
    """A conversation as the core's :class:`~semcache_core.Prompt`, split by the core's one
    rule (:meth:`semcache_core.Prompt.from_turns`): the last user message's text is compared
    semantically; the rest exactly (``context_match="exact"``) or, for the earlier user and
    assistant texts, by meaning and facts (``"semantic"``). A turn's ``extra`` (what must still
    match exactly) is its non-text blocks (images, tool calls, thinking ...) and non-empty
    ``additional_kwargs``."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise Uncacheable(f"messages must be a sequence, got {type(messages).__name__}")
    turns = []
    for message in messages:
        dumped = _message_json(message)
        blocks = message.blocks
        non_text = [
            b
            for b, block in zip(dumped["blocks"], blocks, strict=True)
            if not isinstance(block, TextBlock)
        ]
        kwargs = dumped.get("additional_kwargs", {})
        turns.append(
            Turn(
                role=str(dumped.get("role", message.role)),
                text="\n".join(block.text for block in blocks if isinstance(block, TextBlock)),
                extra={"blocks": non_text, "kwargs": kwargs} if non_text or kwargs else None,
                rest={
                    "additional_kwargs": kwargs,
                    "non_text": non_text,
                    "text_blocks": sum(isinstance(block, TextBlock) for block in blocks),
                },
                whole=dumped,
            )
        )
    return Prompt.from_turns(canonical_json([turn.whole for turn in turns]), turns)


# -- responses ---------------------------------------------------------------------------------
def _logprobs_json(logprobs: Any) -> Any:
    if logprobs is None:
        return None
    return [[item.model_dump(mode="json") for item in row] for row in logprobs]


def _logprobs_from_json(raw: Any) -> list[list[LogProb]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(row, list) for row in raw):
        raise ValueError("logprobs must be a list of lists")
    rows: list[list[LogProb]] = []
    for row in raw:
        items: list[LogProb] = []
        for item in row:
            if not isinstance(item, dict):
                raise ValueError("a logprob must be an object")
            items.append(
                LogProb(
                    token=str(item.get("token", "")),
                    logprob=float(item.get("logprob", 0.0)),
                    bytes=[int(b) for b in item.get("bytes", [])],
                )
            )
        rows.append(items)
    return rows


def _block_json(block: Any) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"block_type": "text", "text": block.text}
    if isinstance(block, ThinkingBlock):
        return {
            "block_type": "thinking",
            "content": block.content,
            "num_tokens": block.num_tokens,
            "additional_information": block.additional_information,
        }
    if isinstance(block, ToolCallBlock):
        return {
            "block_type": "tool_call",
            "tool_call_id": block.tool_call_id,
            "tool_name": block.tool_name,
            "tool_kwargs": block.tool_kwargs,
        }
    raise Uncacheable(f"a response block of type {type(block).__name__} is not cached")


def _opt_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("expected a string or null")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return value


def _block_from_json(raw: Any) -> TextBlock | ThinkingBlock | ToolCallBlock:
    raw = _dict(raw)
    kind = raw.get("block_type")
    if kind == "text":
        text = raw.get("text")
        if not isinstance(text, str):
            raise ValueError("a text block needs a text")
        return TextBlock(text=text)
    if kind == "thinking":
        num_tokens = raw.get("num_tokens")
        if num_tokens is not None and (
            isinstance(num_tokens, bool) or not isinstance(num_tokens, int)
        ):
            raise ValueError("num_tokens must be an int")
        return ThinkingBlock(
            content=_opt_str(raw.get("content")),
            num_tokens=num_tokens,
            additional_information=_dict(raw.get("additional_information", {})),
        )
    if kind == "tool_call":
        name = raw.get("tool_name")
        tool_kwargs = raw.get("tool_kwargs", {})
        if not isinstance(name, str) or not isinstance(tool_kwargs, (dict, str)):
            raise ValueError("a tool call needs a name and kwargs")
        return ToolCallBlock(
            tool_call_id=_opt_str(raw.get("tool_call_id")),
            tool_name=name,
            tool_kwargs=tool_kwargs,
        )
    raise ValueError(f"unknown block type {kind!r}")


def completion_to_json(response: CompletionResponse) -> dict[str, Any]:
    if not isinstance(response, CompletionResponse):
        raise Uncacheable(f"expected a CompletionResponse, got {type(response).__name__}")
    body = {
        "type": "completion",
        "text": response.text,
        "additional_kwargs": response.additional_kwargs,
        "logprobs": _logprobs_json(response.logprobs),
    }
    _strict_json(body, "the response")
    return body


def chat_to_json(response: ChatResponse) -> dict[str, Any]:
    if not isinstance(response, ChatResponse):
        raise Uncacheable(f"expected a ChatResponse, got {type(response).__name__}")
    message = response.message
    body = {
        "type": "chat",
        "message": {
            "role": MessageRole(message.role).value,
            "blocks": [_block_json(block) for block in message.blocks],
            "additional_kwargs": message.additional_kwargs,
        },
        "additional_kwargs": response.additional_kwargs,
        "logprobs": _logprobs_json(response.logprobs),
    }
    _strict_json(body, "the response")
    return body


def completion_from_json(body: Mapping[str, Any]) -> CompletionResponse | None:
    try:
        if body.get("type") != "completion" or not isinstance(body.get("text"), str):
            raise ValueError("not a completion")
        return CompletionResponse(
            text=body["text"],
            additional_kwargs=_dict(body.get("additional_kwargs", {})),
            logprobs=_logprobs_from_json(body.get("logprobs")),
        )
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        logger.warning("semcache: ignoring a cached completion that does not rebuild: %s", exc)
        return None


def chat_from_json(body: Mapping[str, Any]) -> ChatResponse | None:
    try:
        if body.get("type") != "chat":
            raise ValueError("not a chat response")
        raw = _dict(body.get("message"))
        blocks = raw.get("blocks")
        if not isinstance(blocks, list):
            raise ValueError("a message needs blocks")
        message = ChatMessage(
            role=MessageRole(raw.get("role")),
            blocks=[_block_from_json(block) for block in blocks],
            additional_kwargs=_dict(raw.get("additional_kwargs", {})),
        )
        return ChatResponse(
            message=message,
            additional_kwargs=_dict(body.get("additional_kwargs", {})),
            logprobs=_logprobs_from_json(body.get("logprobs")),
        )
    except (ValueError, TypeError) as exc:
        logger.warning("semcache: ignoring a cached chat response that does not rebuild: %s", exc)
        return None


def _usage_tokens(kwargs: Any) -> float:
    if not isinstance(kwargs, dict):
        return 0.0
    nested = kwargs.get("usage")
    usage: dict[str, Any] = nested if isinstance(nested, dict) else kwargs
    total = usage.get("total_tokens")
    if isinstance(total, (int, float)) and not isinstance(total, bool):
        return float(total)
    parts = [
        usage.get(k)
        for k in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
    ]
    return float(sum(p for p in parts if isinstance(p, (int, float)) and not isinstance(p, bool)))


def count_tokens(body: Mapping[str, Any]) -> float:
    """Tokens a response cost, from the usage numbers providers put in ``additional_kwargs``."""
    tokens = _usage_tokens(body.get("additional_kwargs"))
    message = body.get("message")
    if not tokens and isinstance(message, dict):
        tokens = _usage_tokens(message.get("additional_kwargs"))
    return tokens
