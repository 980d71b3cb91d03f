"""Codecs, in one place: vectors (float32 bytes, base64 text) and cache entries (safe JSON).

Cached data is untrusted input: whatever is in Redis or Elasticsearch may have been written by
another program, an older version, or an attacker. Entries are therefore plain JSON (never
pickle) inside a small versioned envelope; decoding never builds an object, it returns
dicts, lists, strings and numbers. Adapters turn those into framework objects through an
explicit allowlist (see ``langchain_semcache._serialization``). A corrupt or foreign entry
decodes to ``None`` with a warning and is treated as a miss.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from semcache_core.errors import SemcacheInputError, VectorDimensionError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]
else:
    # numpy is imported by the functions that handle vectors, not by this module: the exact
    # cache path (keys, entries, JSON) never loads it (~60 ms of import time). ``Vector`` is
    # only ever an annotation at run time.
    Vector = "numpy.ndarray"

logger = logging.getLogger("semcache")

ENTRY_MAGIC = "semcache"
ENTRY_VERSION = 1


def as_vector(values: Sequence[float] | npt.ArrayLike, *, dim: int | None = None) -> Vector:
    """Validate ``values`` and return them as a 1-D little-endian float32 array.

    Raises ``SemcacheInputError`` for NaN/inf, an empty or zero vector (cosine distance is
    undefined for it) and ``VectorDimensionError`` when ``dim`` is given and differs.
    """
    import numpy as np

    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise SemcacheInputError(f"a vector must be a sequence of numbers: {exc}") from exc
    if array.ndim != 1 or array.size == 0:
        raise SemcacheInputError(
            f"a vector must be a non-empty 1-D sequence of numbers, got shape {array.shape}"
        )
    if dim is not None and array.size != dim:
        raise VectorDimensionError(
            f"vector has dimension {array.size}, but this namespace stores vectors of "
            f"dimension {dim}; use one embedding model per namespace"
        )
    if not np.all(np.isfinite(array)):
        raise SemcacheInputError("a vector must not contain NaN or infinite values")
    if not np.any(array):
        raise SemcacheInputError("a zero vector has no direction; cosine distance is undefined")
    return array.astype("<f4", copy=False)


def normalize(vector: Vector) -> Vector:
    """Unit-length copy of ``vector`` (cosine distance then is ``1 - dot``)."""
    import numpy as np

    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32)


def vector_to_bytes(vector: Vector) -> bytes:
    """float32 little-endian bytes: the layout Redis vector fields expect."""
    import numpy as np

    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(raw: bytes, *, dim: int | None = None) -> Vector:
    """Inverse of :func:`vector_to_bytes`; a length that is not a whole vector is an error."""
    if len(raw) % 4 or (dim is not None and len(raw) != 4 * dim):
        raise SemcacheInputError(f"{len(raw)} bytes is not a float32 vector of dimension {dim}")
    import numpy as np

    vector: Vector = np.frombuffer(raw, dtype="<f4").copy()
    return vector


def vector_to_base64(vector: Vector) -> str:
    """base64 text of the float32 bytes (Elasticsearch ``binary`` fields take base64)."""
    return base64.b64encode(vector_to_bytes(vector)).decode("ascii")


def vector_from_base64(text: str, *, dim: int | None = None) -> Vector:
    """Inverse of :func:`vector_to_base64`."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SemcacheInputError(f"not base64 vector data: {exc}") from exc
    return vector_from_bytes(raw, dim=dim)


def bytes_to_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def bytes_from_base64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def canonical_json(
    value: Any, *, default: Callable[[Any], Any] | None = None, allow_nan: bool = False
) -> str:
    """The one canonical JSON text of ``value``: sorted keys, no spaces, UTF-8 kept as is.

    Used wherever JSON is a key (scopes, contexts, tags): equal values give equal text.
    ``default`` converts what JSON cannot hold (raise ``TypeError`` to refuse it).
    """
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=allow_nan,
        default=default,
    )


def encode_entry(kind: str, body: dict[str, Any]) -> bytes:
    """Serialize a cache entry: compact JSON with a magic/version/kind envelope.

    ``body`` must hold only JSON types; anything else is a ``TypeError`` naming the field, so
    a value that cannot round-trip is refused before it is stored.
    """
    envelope = {"_": ENTRY_MAGIC, "v": ENTRY_VERSION, "kind": kind, "body": body}
    try:
        text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cache entry of kind {kind!r} is not JSON-serializable: {exc}") from exc
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        bad = [name for name, part in body.items() if not _encodes(part)]
        raise SemcacheInputError(
            f"cache entry of kind {kind!r} holds text that is not valid Unicode (a lone "
            f"surrogate) in {', '.join(map(repr, bad)) or 'its body'}"
        ) from None


def _encodes(part: Any) -> bool:
    try:
        json.dumps(part, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError):
        return False
    return True


#: Deepest nesting of arrays and objects accepted in untrusted JSON. Cache entries nest a few
#: dozen levels at most; ``json.loads`` recurses once per level, and letting it run into the
#: interpreter's recursion limit is not a clean failure (a finalizer that the garbage collector
#: runs at that depth fails too, as an "unraisable" error), so deeper input is refused first.
MAX_JSON_DEPTH = 200
_JSON_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _nested_too_deep(raw: str | bytes) -> bool:
    opening = (
        raw.count("[") + raw.count("{")
        if isinstance(raw, str)
        else (raw.count(b"[") + raw.count(b"{"))
    )
    if opening <= MAX_JSON_DEPTH:  # the common case: a count in C, no scan
        return False
    # Brackets, quotes and backslashes are ASCII, and no byte of a multi-byte UTF-8 sequence
    # is, so latin-1 (which cannot fail) finds the same structure as the real decoding.
    text = raw if isinstance(raw, str) else raw.decode("latin-1")
    depth = 0
    for match in _JSON_STRUCTURE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif token in "]}":
            depth -= 1
    return False


def loads_untrusted(raw: str | bytes) -> Any:
    """``json.loads`` for data semcache did not just write: nesting deeper than
    :data:`MAX_JSON_DEPTH` (``[[[[...``, 100k levels) is a ``ValueError`` like any other
    malformed JSON, refused before parsing, never a RecursionError."""
    if _nested_too_deep(raw):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    # semcache writes UTF-8 only; decoding here skips json's encoding detection (UTF-16/32).
    text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    try:
        return json.loads(text)
    except RecursionError:  # a recursion limit set below MAX_JSON_DEPTH by the application
        raise ValueError("JSON nested too deeply") from None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_text_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(name, str) and isinstance(text, str) for name, text in value.items()
    )


def _response_problem(body: dict[str, Any]) -> str | None:
    """Why a ``response`` body cannot be served, or ``None`` (what the engine reads of it)."""
    if not isinstance(body.get("value"), dict):
        return "its value is not a JSON object"
    for name in ("tokens", "created"):
        if name in body and not _is_number(body[name]):
            return f"its {name} is not a finite number"
    for name in ("query", "prompt", "llm_string"):
        if name in body and not isinstance(body[name], str):
            return f"its {name} is not a string"
    if body.get("expires") is not None and not _is_number(body["expires"]):
        return "its expires is neither null nor a finite number"
    if "scope" in body and not _is_text_map(body["scope"]):
        return "its scope is not an object of strings"
    if "metadata" in body and not isinstance(body["metadata"], dict):
        return "its metadata is not a JSON object"
    return None


#: The body check of each entry kind that has one (the fields the engine relies on).
BODY_CHECKS: dict[str, Callable[[dict[str, Any]], str | None]] = {"response": _response_problem}


def decode_entry(raw: bytes | None, kind: str) -> dict[str, Any] | None:
    """Decode an entry written by :func:`encode_entry`; anything else is a miss with a warning.

    The envelope and, for kinds in :data:`BODY_CHECKS`, the body are checked: an entry whose
    body lacks its value or holds a field of the wrong type is a miss, never an exception.
    """
    if raw is None:
        return None
    try:
        envelope = loads_untrusted(raw)
    except (UnicodeDecodeError, ValueError):
        logger.warning("semcache: ignoring a corrupt cache entry (not JSON)")
        return None
    if (
        not isinstance(envelope, dict)
        or envelope.get("_") != ENTRY_MAGIC
        or envelope.get("kind") != kind
        or not isinstance(envelope.get("body"), dict)
    ):
        logger.warning("semcache: ignoring a foreign cache entry (expected kind %r)", kind)
        return None
    if envelope.get("v") != ENTRY_VERSION:
        logger.warning("semcache: ignoring a cache entry of unknown version %r", envelope.get("v"))
        return None
    body: dict[str, Any] = envelope["body"]
    check = BODY_CHECKS.get(kind)
    problem = check(body) if check is not None else None
    if problem is not None:
        logger.warning("semcache: ignoring a malformed %r cache entry: %s", kind, problem)
        return None
    return body


def validate_ttl(ttl: object, *, name: str = "ttl") -> float | None:
    """``None`` (no expiry) or a positive number of seconds."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"{name} must be None or a number of seconds, got {type(ttl).__name__}")
    if not math.isfinite(ttl) or ttl <= 0:
        raise SemcacheInputError(f"{name} must be a positive number of seconds, got {ttl!r}")
    return float(ttl)


# -- cached embeddings (EmbeddingsCache, LlamaIndex CachedEmbedding) --------------------------
#: Storage precisions of cached embeddings: ``float64`` keeps every float a model returned,
#: bit for bit; ``float32`` halves the storage (about 7 significant digits).
EMBEDDING_PRECISIONS = {"float64": "<f8", "float32": "<f4"}
#: An embedding value: this magic, one byte of precision (``8``/``4``), the metadata's length
#: (4 bytes, big-endian), the metadata as canonical JSON (empty: none), the vector's bytes.
EMBEDDING_MAGIC = b"\x00semcache-embedding\x01"
_PRECISION_CODES = {"float64": b"8", "float32": b"4"}
_HEADER = len(EMBEDDING_MAGIC) + 1 + 4


@dataclass(frozen=True, slots=True)
class StoredEmbedding:
    """A decoded embedding value: the vector, its user metadata (``None``: none), precision."""

    vector: list[float]
    metadata: dict[str, Any] | None
    precision: str


def embedding_array(values: object, precision: str = "float64") -> npt.NDArray[Any]:
    """``values`` as a 1-D array of finite numbers at ``precision``, or a clear error."""
    import numpy as np

    if isinstance(values, (str, bytes, bytearray, Mapping)) or not hasattr(values, "__len__"):
        raise TypeError(
            f"an embedding must be a sequence of numbers (list, tuple or numpy array), got "
            f"{type(values).__name__}"
        )
    try:
        array = np.asarray(values, dtype=EMBEDDING_PRECISIONS[precision])
    except (TypeError, ValueError) as exc:
        raise SemcacheInputError(f"an embedding must be a sequence of numbers: {exc}") from exc
    if array.ndim != 1 or array.size == 0:
        raise SemcacheInputError(
            f"an embedding must be a non-empty 1-D sequence of numbers, got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise SemcacheInputError("an embedding must not contain NaN or infinite values")
    return array


def encode_embedding(
    array: npt.NDArray[Any], metadata: Mapping[str, Any] | None, precision: str
) -> bytes:
    """An embedding value (see :data:`EMBEDDING_MAGIC`) of an array from :func:`embedding_array`."""
    import numpy as np

    meta = b""
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
        try:
            meta = canonical_json(dict(metadata)).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError) as exc:
            raise TypeError(f"metadata must hold only JSON values: {exc}") from None
    body = np.asarray(array, dtype=EMBEDDING_PRECISIONS[precision]).tobytes()
    header = EMBEDDING_MAGIC + _PRECISION_CODES[precision] + len(meta).to_bytes(4, "big")
    return header + meta + body


def decode_embedding(raw: bytes | None) -> StoredEmbedding | None:
    """Decode :func:`encode_embedding`'s value; anything else is a miss (with a warning)."""
    if raw is None:
        return None
    import numpy as np

    problem = "not a semcache embedding"
    if isinstance(raw, bytes) and raw.startswith(EMBEDDING_MAGIC) and len(raw) >= _HEADER:
        code = raw[len(EMBEDDING_MAGIC) : len(EMBEDDING_MAGIC) + 1]
        precision = next((p for p, c in _PRECISION_CODES.items() if c == code), None)
        size = int.from_bytes(raw[_HEADER - 4 : _HEADER], "big")
        body = raw[_HEADER + size :]
        width = 8 if precision == "float64" else 4
        if precision is None:
            problem = "unknown precision"
        elif _HEADER + size > len(raw) or not body or len(body) % width:
            problem = "truncated"
        else:
            metadata = _metadata_of(raw[_HEADER : _HEADER + size]) if size else None
            vector = np.frombuffer(body, dtype=EMBEDDING_PRECISIONS[precision])
            if size and metadata is None:
                problem = "its metadata is not a JSON object"
            elif not np.all(np.isfinite(vector)):
                problem = "not finite"
            else:
                return StoredEmbedding([float(x) for x in vector], metadata, precision)
    logger.warning("semcache: ignoring a corrupt cached embedding (%s)", problem)
    return None


def _metadata_of(raw: bytes) -> dict[str, Any] | None:
    try:
        value = loads_untrusted(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def encode_float_list(array: npt.NDArray[Any]) -> bytes:
    """The value LangChain's ``CacheBackedEmbeddings`` stores: a JSON list of floats."""
    return json.dumps([float(x) for x in array]).encode("utf-8")


def decode_float_list(raw: bytes | None) -> list[float] | None:
    """Inverse of :func:`encode_float_list`; anything but a non-empty list of finite numbers
    is a miss (with a warning)."""
    if raw is None:
        return None
    try:
        value = loads_untrusted(raw)
    except (UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, list) or not value or not all(_is_number(x) for x in value):
        logger.warning("semcache: ignoring a corrupt cached embedding (not a list of floats)")
        return None
    return [float(x) for x in value]
