"""The key scheme, written once for every backend and adapter.

Physical layout (what a Redis user sees in ``SCAN``): ``<namespace>:<kind>:<rest>``.

* ``kind`` is a short tag: ``kv`` for ByteStore / KV values, ``llm`` for exact LLM entries,
  ``vec`` for semantic entries. Backends add their own internal kinds (logs, stats).
* Hashes are BLAKE2b-128 over *length-prefixed* parts. Concatenating raw strings
  (``md5(prompt + llm_string)``) is ambiguous: ``("ab", "c")`` and ``("a", "bc")`` would
  collide, and a cache must never serve one prompt's answer for another.
"""

from __future__ import annotations

import hashlib
import re

NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_.\-/]{1,128}$")
DEFAULT_NAMESPACE = "semcache"


def validate_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is usable in every backend, else raise a clear error.

    The character set excludes ``:`` (our key separator: namespace ``a`` must never clear the
    keys of namespace ``a:b``), glob characters (Redis ``SCAN MATCH``) and whitespace.
    """
    from semcache_core.errors import SemcacheInputError

    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, got {type(namespace).__name__}")
    if not NAMESPACE_PATTERN.match(namespace):
        raise SemcacheInputError(
            f"invalid namespace {namespace!r}: use 1 to 128 characters from "
            "letters, digits, '_', '.', '-' and '/' (no ':', spaces or glob characters)"
        )
    return namespace


def stable_hash(*parts: str) -> str:
    """Hex digest (32 chars) of ``parts``, each length-prefixed so no two tuples collide."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.hexdigest()


def exact_entry_key(namespace: str, scope: str, prompt: str) -> str:
    """Backend key (within ``namespace``) of the exact entry for ``prompt`` under ``scope``.

    ``scope`` is everything that must be identical for an answer to be reusable: for
    LangChain the ``llm_string`` (model and parameters).
    """
    return "llm:" + stable_hash("exact", namespace, scope, prompt)


def partition_key(namespace: str, scope: str, context: str) -> str:
    """The semantic partition: entries are only compared with entries of the same partition.

    It covers the model and its parameters (``scope``) and the exact conversation context
    (system prompt, tools, earlier turns): a semantic match never crosses either.
    """
    return stable_hash("partition", namespace, scope, context)


def semantic_entry_id(namespace: str, partition: str, query: str) -> str:
    """Id of the semantic entry for ``query`` in ``partition``; stable so updates overwrite."""
    return stable_hash("semantic", namespace, partition, query)


def kv_key(user_key: str) -> str:
    """Backend key of a ByteStore / KV entry: the user's key stays readable."""
    return "kv:" + user_key


KV_PREFIX = "kv:"
