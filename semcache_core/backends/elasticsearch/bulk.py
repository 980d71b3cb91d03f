"""Elasticsearch bulk writes (sized batches, per-item checks) and purging expired documents."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from semcache_core.backends.elasticsearch.calls import Call, Reply, error_of
from semcache_core.backends.elasticsearch.schema import (
    SCHEMA_ERRORS,
    VALUE,
    VECTOR,
    IndexSchema,
    Refresh,
    now_ms,
)
from semcache_core.errors import BackendError, SchemaConflictError
from semcache_core.flow import Flow
from semcache_core.keys import validate_namespace

#: Bulk bodies are cut at about this many bytes (see ``_send_bulk``).
BULK_MAX_BYTES = 16 * 1024 * 1024
#: A bulk body larger than this gets the admin timeout instead of the request timeout.
BULK_LARGE_BYTES = 1024 * 1024


def _estimated_bytes(line: dict[str, Any]) -> int:
    """Rough JSON size of a bulk line: its strings, plus ~12 bytes per vector component."""
    total = 64
    for value in line.values():
        if isinstance(value, str):
            total += len(value) + 8
        elif isinstance(value, list):
            total += 12 * len(value)
        elif isinstance(value, dict):
            total += _estimated_bytes(value)
        else:
            total += 16
    return total


class BulkWriter(IndexSchema):
    """Bulk requests and purges against the index (``refresh`` and ``purge_interval``)."""

    refresh: Refresh
    purge_interval: float | None
    _last_purge: float

    def _write_kwargs(self, refresh: Refresh | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"index": self.index}
        if self.is_alias:
            kwargs["require_alias"] = True
        if refresh:
            kwargs["refresh"] = refresh
        return kwargs

    def _action(self, op: str, document_id: str, **extra: Any) -> dict[str, Any]:
        """A bulk action line. It names the index itself (rather than the request path):
        noida-db refuses ``require_alias`` with the alias in the path (see the tests)."""
        return {op: {"_index": self.index, "_id": document_id, **extra}}

    def _bulk(
        self,
        operations: list[dict[str, Any]],
        refresh: Refresh | None = None,
        *,
        admin: bool = False,
    ) -> Call:
        kwargs = self._write_kwargs(refresh)
        del kwargs["index"]
        return Call("bulk", {**kwargs, "operations": operations}, admin=admin)

    def _send_bulk(
        self,
        operations: list[dict[str, Any]],
        refresh: Refresh | None = None,
        tolerate: Iterable[int] = (),
    ) -> Flow[None]:
        """Send ``operations`` as one bulk request, or several when the body would be large.

        Elasticsearch refuses request bodies over ``http.max_content_length`` (100 MB by
        default), and a large body cannot finish within the short request timeout: batches
        are cut at :data:`BULK_MAX_BYTES` (a 1,000-key ByteStore batch of embeddings stays one
        request), and a body over :data:`BULK_LARGE_BYTES` gets the admin timeout. Only the
        last request carries ``refresh``: refreshing once makes every earlier one visible.
        """
        batches: list[tuple[list[dict[str, Any]], int]] = []
        batch: list[dict[str, Any]] = []
        size = 0
        index = 0
        while index < len(operations):
            action = operations[index]
            # A delete action has no source line; every other action has one.
            width = 1 if "delete" in action else 2
            item = operations[index : index + width]
            item_size = sum(_estimated_bytes(part) for part in item)
            if batch and size + item_size > BULK_MAX_BYTES:
                batches.append((batch, size))
                batch, size = [], 0
            batch += item
            size += item_size
            index += width
        if batch:
            batches.append((batch, size))
        for number, (body, body_size) in enumerate(batches, start=1):
            last = number == len(batches)
            reply = yield self._bulk(
                body, refresh if last else None, admin=body_size > BULK_LARGE_BYTES
            )
            self._check_bulk(reply, tolerate=tolerate)

    def _check_bulk(self, reply: Reply, tolerate: Iterable[int] = ()) -> None:
        """Raise for the first failed item whose status is not tolerated."""
        tolerated = set(tolerate)
        for item in reply.body.get("items", ()):
            (op, result), *_ = item.items()
            if "error" not in result or result.get("status") in tolerated:
                continue
            error_type, reason = error_of(result)
            if error_type == "index_not_found_exception":
                self.forget_index()
            message = (
                f"Elasticsearch bulk {op} of {result.get('_id')!r} in {self.index!r} failed "
                f"(HTTP {result.get('status')}): {error_type}: {reason}"
            )
            if error_type in SCHEMA_ERRORS or error_type == "index_not_found_exception":
                raise SchemaConflictError(message)
            raise BackendError(message)

    def _maybe_purge(self) -> Flow[None]:
        """At most every ``purge_interval`` seconds per process, delete expired documents."""
        if not self.purge_interval:
            return
        now = time.monotonic()
        if now - self._last_purge < self.purge_interval:
            return
        self._last_purge = now
        yield Call(
            "delete_by_query",
            {
                "index": self.index,
                "query": self._expired_query(None),
                "conflicts": "proceed",
                "wait_for_completion": False,
            },
            admin=True,
            soft=True,
        )

    @staticmethod
    def _expired_query(namespace: str | None) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = [
            {"terms": {"kind": [VALUE, VECTOR]}},
            {"range": {"expires_at": {"lte": now_ms()}}},
        ]
        if namespace is not None:
            clauses.append({"term": {"ns": namespace}})
        return {"bool": {"filter": clauses}}

    def purge_expired(self, namespace: str | None) -> Flow[int]:
        """Delete expired values and vectors now (of ``namespace``, or of every namespace)."""
        if namespace is not None:
            validate_namespace(namespace)
        yield from self.ensure_index()
        # delete_by_query deletes what a search sees: make recent writes visible first.
        yield Call("indices.refresh", {"index": self.index}, admin=True, soft=True)
        reply = yield Call(
            "delete_by_query",
            {
                "index": self.index,
                "query": self._expired_query(namespace),
                "conflicts": "proceed",
                "refresh": True,
            },
            admin=True,
        )
        self._last_purge = time.monotonic()
        return int(reply.body.get("deleted", 0))
