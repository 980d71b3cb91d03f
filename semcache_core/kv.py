"""The policy behind ByteStore and KV adapters: bytes by string key in one namespace.

Written like :class:`~semcache_core.engine.ResponseCache`: each operation is a flow over the
backend's operations, the public sync and async methods are ``run``/``arun`` of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

from semcache_core import keys
from semcache_core.backends.base import KeyPage, KeyScan, checked_keys
from semcache_core.codecs import validate_ttl
from semcache_core.engine import CacheEngine
from semcache_core.flow import Flow, arun, run


class KeyValueCache(CacheEngine):
    """Bytes by string key in one namespace: the policy behind ByteStore and KV adapters.

    Keys must be ``str`` and values ``bytes``; anything else is a ``TypeError`` raised before
    anything is written, so a bad batch stores nothing. A failed read returns ``None`` for
    every key (the caller recomputes); a failed write is skipped (see resilience). Options
    are those of :class:`~semcache_core.engine.CacheEngine`.
    """

    @staticmethod
    def _check_keys(user_keys: Sequence[str]) -> list[str]:
        return [keys.kv_key(key) for key in checked_keys(user_keys)]

    @staticmethod
    def _check_items(items: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        checked: list[tuple[str, bytes]] = []
        for item in items:
            if not isinstance(item, tuple) or len(item) != 2:
                raise TypeError(f"items must be (key, value) pairs, got {item!r}")
            key, value = item
            if not isinstance(key, str):
                raise TypeError(f"keys must be str, got {type(key).__name__}: {key!r}")
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(
                    f"values must be bytes, got {type(value).__name__} for key {key!r}; "
                    "encode text first (e.g. value.encode('utf-8'))"
                )
            checked.append((keys.kv_key(key), bytes(value)))
        return checked

    def _read(self, backend_keys: list[str]) -> Flow[list[bytes | None]]:
        """The values of ``backend_keys``; all ``None`` when the backend failed."""
        missing: list[bytes | None] = [None] * len(backend_keys)
        read = self.ops.get_many(self.namespace, backend_keys)
        return (yield from self.guard.shield("get_many", read, missing))

    def _mget_flow(self, user_keys: Sequence[str]) -> Flow[list[bytes | None]]:
        backend_keys = self._check_keys(user_keys)
        if not backend_keys:
            return []
        values = yield from self._read(backend_keys)
        found = sum(value is not None for value in values)
        self.stats.add(kv_hits=found, kv_misses=len(values) - found)
        yield from self._maybe_flush()
        return values

    def _mset_flow(self, items: Sequence[tuple[str, bytes]], ttl: float | None) -> Flow[None]:
        checked = self._check_items(items)
        entry_ttl = self.ttl if ttl is None else validate_ttl(ttl)
        if checked:
            write = self.ops.set_many(self.namespace, checked, ttl=entry_ttl)
            yield from self.guard.shield("set_many", write, None)
            self.stats.add(writes=len(checked))

    def _mdelete_flow(self, user_keys: Sequence[str]) -> Flow[None]:
        backend_keys = self._check_keys(user_keys)
        if backend_keys:
            delete = self.ops.delete_many(self.namespace, backend_keys)
            yield from self.guard.shield("delete_many", delete, None)

    def _mpop_flow(self, user_keys: Sequence[str]) -> Flow[list[bytes | None]]:
        backend_keys = self._check_keys(user_keys)
        if not backend_keys:
            return []
        values = yield from self._read(backend_keys)
        found = [key for key, value in zip(backend_keys, values, strict=True) if value is not None]
        if found:
            delete = self.ops.delete_many(self.namespace, found)
            yield from self.guard.shield("delete_many", delete, None)
        return values

    def _clear_flow(self) -> Flow[None]:
        yield from self.guard.shield("clear", self.ops.clear(self.namespace), None)

    def mget(self, user_keys: Sequence[str]) -> list[bytes | None]:
        return run(self._mget_flow(user_keys), self.transport)

    async def amget(self, user_keys: Sequence[str]) -> list[bytes | None]:
        return await arun(self._mget_flow(user_keys), self.transport)

    def mset(self, items: Sequence[tuple[str, bytes]], *, ttl: float | None = None) -> None:
        run(self._mset_flow(items, ttl), self.transport)

    async def amset(self, items: Sequence[tuple[str, bytes]], *, ttl: float | None = None) -> None:
        await arun(self._mset_flow(items, ttl), self.transport)

    def mdelete(self, user_keys: Sequence[str]) -> None:
        run(self._mdelete_flow(user_keys), self.transport)

    async def amdelete(self, user_keys: Sequence[str]) -> None:
        await arun(self._mdelete_flow(user_keys), self.transport)

    def mpop(self, user_keys: Sequence[str]) -> list[bytes | None]:
        """Delete ``user_keys`` and return their values (``None`` for keys that were missing).

        Two round trips (read, then delete the keys found), not atomic. Not counted as hits or
        misses: it answers "did it exist", e.g. for a KV store's ``delete() -> bool``.
        """
        return run(self._mpop_flow(user_keys), self.transport)

    async def ampop(self, user_keys: Sequence[str]) -> list[bytes | None]:
        return await arun(self._mpop_flow(user_keys), self.transport)

    def clear(self) -> None:
        run(self._clear_flow(), self.transport)

    async def aclear(self) -> None:
        await arun(self._clear_flow(), self.transport)

    def _key_page(self, scan: KeyScan) -> Flow[KeyPage | None]:
        return (yield from self.guard.shield("iter_keys", scan.next_page(), None))

    def yield_keys(self, prefix: str | None = None) -> Iterator[str]:
        """User keys starting with ``prefix``; a backend failure ends the iteration early."""
        scan = KeyScan(self.ops, self.namespace, self._prefix(prefix))
        while not scan.finished:
            for key in scan.take(run(self._key_page(scan), self.transport)):
                yield key[len(keys.KV_PREFIX) :]

    async def ayield_keys(self, prefix: str | None = None) -> AsyncIterator[str]:
        scan = KeyScan(self.ops, self.namespace, self._prefix(prefix))
        while not scan.finished:
            for key in scan.take(await arun(self._key_page(scan), self.transport)):
                yield key[len(keys.KV_PREFIX) :]

    @staticmethod
    def _prefix(prefix: str | None) -> str:
        if prefix is not None and not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str or None, got {type(prefix).__name__}")
        return keys.KV_PREFIX + (prefix or "")
