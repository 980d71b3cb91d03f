"""What a provider context cache holds, and the stable key that names it across workers.

A :class:`ContextSpec` is the cached prefix of a request: model, system instruction, leading
contents (documents), tools and tool config. Its key is a length-prefixed BLAKE2b hash
(:func:`semcache_core.keys.stable_hash`) of a canonical JSON form, scoped by the provider's
endpoint, project, location and API version and by the model, so two workers that build the
same context from the same inputs agree on one key, and no two contexts share one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from semcache_core.keys import stable_hash

#: First guesses of the smallest context each model caches, in tokens (Gemini API
#: documentation, "Context caching": 1,024 for the Flash models, 4,096 for the Pro models;
#: longest matching prefix wins). Only used to skip a create that is clearly too small (a
#: context estimated at less than half the guess); the provider's own "too small" error is
#: what the registry learns and remembers.
MIN_TOKENS_FIRST_GUESS: Mapping[str, int] = {
    "gemini-2.5-flash": 1024,
    "gemini-2.5-pro": 4096,
    "gemini-3-flash": 1024,
    "gemini-3-pro": 4096,
}

#: Characters per token used to estimate a context's size before the provider counts it.
CHARS_PER_TOKEN = 4


def first_guess_min_tokens(model: str) -> int | None:
    """The documented minimum for ``model`` (``models/`` prefix ignored), None if unknown."""
    name = model.removeprefix("models/")
    best = max((p for p in MIN_TOKENS_FIRST_GUESS if name.startswith(p)), key=len, default=None)
    return None if best is None else MIN_TOKENS_FIRST_GUESS[best]


def _plain(value: Any) -> Any:
    """A JSON-ready form of strings, dicts, lists and pydantic objects (google-genai types)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _plain(dump(mode="json", exclude_none=True))
    raise TypeError(
        f"a context holds strings, dicts and google-genai objects (Part, Content, Tool), "
        f"got {type(value).__module__}.{type(value).__name__}"
    )


@dataclass(frozen=True)
class ContextSpec:
    """The cached prefix of a request (see the module docstring).

    ``contents``: strings, google-genai ``Part``/``Content`` objects or their dict forms (the
    strings and parts become one user turn); ``tools``: google-genai ``Tool`` objects or dicts.
    """

    model: str
    system_instruction: Any = None
    contents: Sequence[Any] = ()
    tools: Sequence[Any] = ()
    tool_config: Any = None
    _canonical: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise TypeError(f"model must be a non-empty str, got {self.model!r}")
        object.__setattr__(self, "contents", tuple(self.contents))
        object.__setattr__(self, "tools", tuple(self.tools))
        form = {
            "model": self.model.removeprefix("models/"),
            "system_instruction": _plain(self.system_instruction),
            "contents": _plain(list(self.contents)),
            "tools": _plain(list(self.tools)),
            "tool_config": _plain(self.tool_config),
        }
        canonical = json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        object.__setattr__(self, "_canonical", canonical)

    @property
    def canonical(self) -> str:
        """The canonical JSON the key hashes."""
        return self._canonical

    def key(self, scope: str) -> str:
        """The context's key under a provider ``scope`` (endpoint, project, location)."""
        return stable_hash(
            "context-cache", scope, self.model.removeprefix("models/"), self._canonical
        )

    def estimated_tokens(self) -> int:
        return len(self._canonical) // CHARS_PER_TOKEN
