"""Redis steps and replies: a :class:`Round` of commands, and tolerant reply parsing.

Replies are parsed tolerantly: RESP2 and RESP3 (redis-py 8 speaks RESP3 by default), and
clients created with ``decode_responses=True`` (commands are sent with redis-py's
``NEVER_DECODE`` option, so binary values always come back as ``bytes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import OutOfMemoryError, ResponseError

from semcache_core.errors import BackendError, StorageFullError
from semcache_core.flow import Flow, Step

Command = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Round(Step):
    """Commands sent in one round trip (pipelined, ``transaction=False``).

    With ``tolerate`` the replies of failed commands come back as ``ResponseError`` objects
    instead of raising; connection errors and timeouts always raise ``BackendError``.

    On a Redis Cluster the commands are routed by their keys: the transport sends one
    pipeline per primary holding any of them (the pipelines go out together, so a round is
    one round trip per primary it touches). A round for one node (``SCAN`` of that node, a
    keyless probe) names it in ``node`` (``host:port``, from :class:`Primaries`).
    """

    commands: Sequence[Command]
    tolerate: bool = False
    node: str | None = None

    def replies(self, sent: Any) -> list[Any]:
        """The replies in command order, from what the client returned for this round."""
        return [sent] if len(self.commands) == 1 else list(sent)


@dataclass(frozen=True, slots=True)
class Topology(Step):
    """Asks the transport whether its server is a Redis Cluster (reply: a bool)."""


@dataclass(frozen=True, slots=True)
class Primaries(Step):
    """Asks the transport for the cluster's current primaries (reply: sorted ``host:port``)."""


def one(command: Command, *, tolerate: bool = False) -> Flow[Any]:
    """A single command as a flow."""
    replies = yield Round((command,), tolerate)
    return replies[0]


def as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def pairs(reply: Any) -> dict[str, Any]:
    """A RESP3 map or a RESP2 flat ``[k1, v1, k2, v2, ...]`` list as a dict with str keys."""
    if isinstance(reply, dict):
        return {as_text(k): v for k, v in reply.items()}
    if isinstance(reply, (list, tuple)):
        return {as_text(reply[i]): reply[i + 1] for i in range(0, len(reply) - 1, 2)}
    return {}


def stream_entries(reply: Any) -> list[tuple[bytes, dict[str, Any]]]:
    """XRANGE/XREVRANGE replies (raw or parsed by redis-py) as ``[(id, fields)]``."""
    entries: list[tuple[bytes, dict[str, Any]]] = []
    for item in reply or ():
        entry_id, fields = item[0], item[1]
        raw_id = entry_id if isinstance(entry_id, bytes) else str(entry_id).encode()
        entries.append((raw_id, pairs(fields)))
    return entries


def is_error(reply: Any) -> bool:
    return isinstance(reply, ResponseError)


def missing_index(reply: Any) -> bool:
    message = str(reply).lower()
    return is_error(reply) and (
        "unknown index" in message or "no such index" in message or "not found" in message
    )


def refused(what: str, reply: Any) -> BackendError:
    if is_out_of_memory(reply):
        return StorageFullError(f"Redis refused {what}, it is full (maxmemory): {reply}")
    return BackendError(f"Redis refused {what}: {reply}")


def is_out_of_memory(error: object) -> bool:
    """Whether ``error`` is Redis's ``OOM command not allowed when used memory > 'maxmemory'``."""
    return isinstance(error, OutOfMemoryError) or (
        isinstance(error, ResponseError) and str(error).startswith("OOM ")
    )
