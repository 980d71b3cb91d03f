"""LangChain generations to and from JSON, with LangChain's own serializer and an allowlist.

``dumpd`` keeps every generation of a result (n > 1) and every field of a chat message (tool
calls, usage metadata, response metadata). ``load`` rebuilds them, but only from the classes in
:data:`ALLOWED_CLASSES`: cached data is untrusted, and a payload naming any other class (a
chat model with an endpoint, a prompt template) is refused and treated as a miss.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Sequence
from operator import methodcaller
from typing import Any

from langchain_core.load import dumpd, load
from langchain_core.load.load import Reviver
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk
from pydantic import BaseModel

from semcache_core.memo import Rebuild

logger = logging.getLogger("semcache")

ALLOWED_CLASSES = (
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
)


def _make_reviver() -> Callable[[Any], Any] | None:
    """LangChain's own ``load()`` walk with one :class:`Reviver` built once.

    ``load()`` rebuilds its allowlist (a scan of every serialization mapping) on each call,
    which cost more than the Redis round trip of a cache hit. The walk below is ``load()``'s:
    escaped user dicts are unescaped, everything else goes through the same ``Reviver`` and
    its allowlist. It needs two private helpers of ``langchain_core.load``; where a future
    langchain-core moves them, this returns ``None`` and the public ``load()`` is used.
    """
    try:
        from langchain_core.load._validation import _is_escaped_dict, _unescape_value
    except ImportError:  # pragma: no cover - depends on the installed langchain-core
        return None
    reviver = Reviver(ALLOWED_CLASSES, secrets_from_env=False)

    def revive(obj: Any) -> Any:
        if isinstance(obj, dict):
            if _is_escaped_dict(obj):
                return _unescape_value(obj)
            return reviver({key: revive(value) for key, value in obj.items()})
        if isinstance(obj, list):
            return [revive(item) for item in obj]
        return obj

    return revive


_REVIVE = _make_reviver()

_GENERATION_ID = ["langchain", "schema", "output", "Generation"]
_CHAT_GENERATION_ID = ["langchain", "schema", "output", "ChatGeneration"]
_AI_MESSAGE_ID = ["langchain", "schema", "messages", "AIMessage"]


def _escape_marker() -> str | None:
    try:
        from langchain_core.load._validation import _LC_ESCAPED_KEY
    except ImportError:  # pragma: no cover - depends on the installed langchain-core
        return None
    return str(_LC_ESCAPED_KEY)


_ESCAPED = _escape_marker()


def _plain_data(value: Any) -> bool:
    """Whether ``value`` holds no dict that ``load()`` treats specially (an ``lc`` object:
    constructor, secret, not-implemented; or an escaped user dict): then ``load()`` returns
    it unchanged, and only the enclosing constructor needs reviving."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "lc" in item or _ESCAPED in item:
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _constructor_kwargs(obj: Any, class_id: list[str]) -> dict[str, Any] | None:
    """The kwargs of ``obj`` if it is ``load()``'s constructor object of ``class_id``."""
    if (
        isinstance(obj, dict)
        and obj.get("lc") == 1
        and obj.get("type") == "constructor"
        and obj.get("id") == class_id
    ):
        kwargs = obj.get("kwargs", {})
        if isinstance(kwargs, dict):
            return kwargs
    return None


def _fast_generation(item: Any) -> Generation | None:
    """The common entries (a ``Generation``, a ``ChatGeneration`` of an ``AIMessage``) rebuilt
    directly, as ``load()`` would (the same classes, called with the same validated kwargs);
    ``None`` when ``item`` is anything else, which then takes the general path.

    ``load()``'s generic walk calls its reviver on every nested dict and copies each one: on
    a cache hit that cost more than decoding the JSON. Here nested values are only checked
    to be plain data (no ``lc`` object, no escaped dict), so the result is the same.
    """
    if _ESCAPED is None:
        return None
    kwargs = _constructor_kwargs(item, _GENERATION_ID)
    if kwargs is not None:
        return Generation(**kwargs) if _plain_data(kwargs) else None
    kwargs = _constructor_kwargs(item, _CHAT_GENERATION_ID)
    if kwargs is None:
        return None
    message = _constructor_kwargs(kwargs.get("message"), _AI_MESSAGE_ID)
    rest = {key: value for key, value in kwargs.items() if key != "message"}
    if message is None or not _plain_data(message) or not _plain_data(rest):
        return None
    return ChatGeneration(message=AIMessage(**message), **rest)


def _load_allowed(item: Any) -> Any:
    fast = _fast_generation(item)
    if fast is not None:
        return fast
    if _REVIVE is not None:
        return _REVIVE(item)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # load() is marked beta
        return load(item, allowed_objects=ALLOWED_CLASSES, secrets_from_env=False)


def generations_to_json(generations: Sequence[Generation]) -> dict[str, Any]:
    """The body stored for a LangChain result: all generations, in order."""
    if isinstance(generations, Generation) or not isinstance(generations, Sequence):
        raise TypeError(
            f"return_val must be a sequence of Generation, got {type(generations).__name__}"
        )
    for generation in generations:
        if not isinstance(generation, Generation):
            raise TypeError(
                f"return_val must hold Generation objects, got {type(generation).__name__}"
            )
    return {"generations": [dumpd(generation) for generation in generations]}


def generations_from_json(body: dict[str, Any]) -> list[Generation] | None:
    """Rebuild generations; ``None`` (a miss) if the body is not what we wrote."""
    raw = body.get("generations")
    if not isinstance(raw, list) or not raw:
        logger.warning("semcache: ignoring a cache entry without generations")
        return None
    try:
        generations = [_load_allowed(item) for item in raw]
    except Exception as exc:
        logger.warning("semcache: ignoring a cache entry that does not deserialize: %s", exc)
        return None
    if not all(isinstance(generation, Generation) for generation in generations):
        logger.warning("semcache: ignoring a cache entry holding non-Generation objects")
        return None
    return generations


# -- validated once per distinct entry (semcache_core.memo) ---------------------------------------
#
# ExactCache serves hits through ``ResponseCache.lookup_value(..., GENERATIONS)``: the first
# time the engine sees an entry's bytes, :func:`generations_from_json` rebuilds and validates
# its generations (the allowlist, pydantic) and :func:`_template` records the validated
# objects as a template the engine's memo keeps; every hit of the same bytes builds new
# objects from it (:func:`_built`) without validating again. A template holds only the
# validated field values: immutable leaves (str, int, float, bool, None, and subclasses of
# str, int, float without attributes), shared as they are, and containers (dicts, lists, tuples, nested models), rebuilt fresh on every hit, so
# no object is ever shared between two callers or with the memo. A validated object holding
# anything else (it never does when it came from JSON) is not templated: its value is kept
# as JSON text and validated on every hit.

_LEAVES = frozenset({str, int, float, bool, type(None)})


class _Untemplatable(Exception):
    """A validated value holds something a template does not copy."""


#: What makes a fresh copy of a validated value on every hit (``None``: an immutable leaf,
#: shared as it is). A flat container's maker is its static copy's own ``copy`` method.
_Maker = Callable[[], Any]


class _Container:
    """A dict or list holding containers: ``static`` is a copy of it with its leaves (``None``
    where a nested container was), ``nested`` the makers of the nested ones by key or index.
    Building it copies ``static`` (one C call; assigning an existing dict key keeps its
    position, so the keys keep their stored order) and makes the nested ones into it."""

    __slots__ = ("nested", "static")

    def __init__(self, static: Any, nested: tuple[tuple[Any, _Maker], ...]) -> None:
        self.static = static
        self.nested = nested

    def build(self) -> Any:
        built = self.static.copy()
        for place, make in self.nested:
            built[place] = make()
        return built


class _Tuple:
    __slots__ = ("items",)

    def __init__(self, items: _Maker) -> None:
        self.items = items

    def build(self) -> tuple[Any, ...]:
        return tuple(self.items())


class _Model(_Container):
    """A validated pydantic model: its class, its field values (its ``__dict__``, as a
    :class:`_Container`), its set fields and the maker of its extras. Built as pydantic's own
    ``__copy__`` builds a model (``__dict__``, ``__pydantic_fields_set__``,
    ``__pydantic_extra__``, ``__pydantic_private__`` set on a new instance), from values that
    were validated when the template was made; :func:`_template` checks that what it builds
    equals the validated objects."""

    __slots__ = ("extra", "fields_set", "listed", "model")

    def __init__(
        self,
        model: type[Any],
        fields: dict[str, Any],
        fields_set: frozenset[str],
        extra: _Maker | None,
    ) -> None:
        super().__init__(fields, _nested(fields, fields.items()))
        self.model: Any = model
        self.fields_set = fields_set
        self.extra = extra
        #: Build a list of the one model (a result of a single generation, the usual case).
        self.listed = False

    def build(self) -> Any:
        values = self.static.copy()
        for place, make in self.nested:
            values[place] = make()
        built = self.model.__new__(self.model)
        _set(built, "__dict__", values)
        _set(built, "__pydantic_fields_set__", set(self.fields_set))
        _set(built, "__pydantic_extra__", None if self.extra is None else self.extra())
        _set(built, "__pydantic_private__", None)
        return [built] if self.listed else built


_set = object.__setattr__


def _maker(value: Any) -> _Maker | None:
    """What makes a fresh copy of ``value`` (a validated value), ``None`` for a leaf."""
    kind = type(value)
    if kind in _LEAVES:
        return None
    if isinstance(value, (str, int, float)) and not hasattr(value, "__dict__"):
        return None  # a subclass without attributes (ChatGeneration.text is a TextAccessor)
    if kind is dict:
        if not all(type(key) is str for key in value):
            raise _Untemplatable("a dict key that is not a str")
        return _container(dict(value), value.items())
    if kind is list:
        return _container(list(value), enumerate(value))
    if kind is tuple:
        if all(_maker(item) is None for item in value):
            return None  # a tuple of leaves is a leaf
        return _Tuple(_container(list(value), enumerate(value))).build
    if isinstance(value, BaseModel):
        return _model(value).build
    raise _Untemplatable(f"a value of type {kind.__name__}")


def _model(value: BaseModel) -> _Model:
    if value.__pydantic_private__:
        raise _Untemplatable(f"{type(value).__name__} has private attributes")
    extra = value.__pydantic_extra__
    return _Model(
        type(value),
        dict(value.__dict__),
        frozenset(value.__pydantic_fields_set__),
        None if extra is None else _maker(dict(extra)),
    )


def _container(static: Any, items: Any) -> _Maker:
    nested = _nested(static, items)
    return _Container(static, nested).build if nested else static.copy


def _nested(static: Any, items: Any) -> tuple[tuple[Any, _Maker], ...]:
    """The makers of the containers among ``items`` (of ``static``), whose places in
    ``static`` are set to ``None``."""
    nested = []
    for place, item in items:
        make = _maker(item)
        if make is not None:
            static[place] = None
            nested.append((place, make))
    return tuple(nested)


def _fields_sets(value: Any) -> list[set[str]]:
    """The set fields of every model in ``value``, in order (pydantic's ``==`` ignores them;
    ``model_dump(exclude_unset=True)`` does not)."""
    found: list[set[str]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseModel):
            found.append(item.model_fields_set)
            stack.extend(item.__dict__.values())
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return found


class _Revalidated:
    """The fallback template: the value as JSON text, validated on every hit."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def build(self) -> list[Generation] | None:
        return generations_from_json(json.loads(self.text))  # it validated when made


class _Generations:
    """The template of a result of several generations."""

    __slots__ = ("makers",)

    def __init__(self, makers: tuple[_Maker, ...]) -> None:
        self.makers = makers

    def build(self) -> list[Generation]:
        return [make() for make in self.makers]


#: A template: what makes the caller's generations, called on every hit.
_Template = Callable[[], "list[Generation] | None"]


def _template(value: dict[str, Any]) -> _Template | None:
    """The template of a stored value (see above), or ``None`` when it does not rebuild."""
    generations = generations_from_json(value)
    if generations is None:
        return None
    try:
        models = [_model(generation) for generation in generations]
        if len(models) == 1:
            models[0].listed = True
            template: _Template = models[0].build
        else:
            template = _Generations(tuple(model.build for model in models)).build
        rebuilt = template()
        same = rebuilt == generations and _fields_sets(rebuilt) == _fields_sets(generations)
    except _Untemplatable:
        same = False
    if not same:
        return _Revalidated(json.dumps(value)).build
    return template


#: How ExactCache serves hits (``ResponseCache.lookup_value``): a template is called (with
#: ``methodcaller``, so no Python frame of ours sits between the engine and the template).
GENERATIONS: Rebuild[_Template, list[Generation]] = Rebuild(_template, methodcaller("__call__"))


def count_tokens(generations: Sequence[Generation]) -> int:
    """Tokens the cached result cost, from chat usage metadata or LLM token_usage info."""
    total = 0
    for generation in generations:
        message = getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None)
        if usage:
            total += int(usage.get("total_tokens", 0))
            continue
        info = generation.generation_info or {}
        token_usage = info.get("token_usage") or {}
        if isinstance(token_usage, dict):
            total += int(token_usage.get("total_tokens", 0) or 0)
    return total
