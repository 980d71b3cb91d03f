"""Sign sketches: which rows of a large partition can be within a distance, read in 48 bytes.

A brute-force search of a mirrored partition reads every vector: 100,000 rows of dimension 384
are 150 MB per query, ~9 ms on one core, bound by memory bandwidth rather than arithmetic. So
each row of a large partition also gets a *sketch*: the signs of its projections on
:data:`BITS` random hyperplanes (SimHash, Charikar 2002), 48 bytes. For two vectors at angle
``θ`` each sign differs with probability ``θ/π``, independently for each hyperplane and
whatever the data, so the Hamming distance of their sketches follows ``Binomial(BITS, θ/π)``.
A search within cosine distance ``d`` (angle ``θmax = arccos(1 - d)``) scores exactly, in
float32, only the rows whose Hamming distance is at most the cutoff that a row at ``θmax``
exceeds with probability below :data:`MISS_PROBABILITY`; every other row is farther than ``d``
except with that probability (the tail of the binomial, computed exactly, not a normal
approximation). The sketches are a filter: distances, thresholds and ranking stay exact.

The sketch scan is six XOR + popcount passes over 800 KB at 100k rows (~0.5 ms); the cutoff
admits few rows for the thresholds semantic caches use (0.1-0.25), and all of them when the
distance is so wide that nothing can be ruled out (then the caller scans every row, as before).
"""

from __future__ import annotations

import functools
import hashlib
import math

import numpy as np
import numpy.typing as npt

# Imported with the module (numpy 2 loads numpy.random on first use, ~20 ms), not in the
# first search of a new process.
from numpy.random import default_rng

#: Hyperplanes per sketch (a multiple of 64: the sketch is read as 64-bit words).
BITS = 384
_WORDS = BITS // 64
#: Largest probability that a row within the searched distance is filtered out.
MISS_PROBABILITY = 1e-9
#: Rows sketched per matrix product when catching up (bounds the temporary projections).
_CHUNK = 8192
_SEED = 0x5E3C


@functools.lru_cache(maxsize=256)
def hamming_cutoff(max_distance: float, bits: int = BITS) -> int | None:
    """The largest Hamming distance a row within cosine distance ``max_distance`` reaches with
    probability at least :data:`MISS_PROBABILITY`; ``None`` when that rules out no row."""
    # Not below 1e-6: a row "at distance 0" in float32 may be a hair away from the query.
    cos = min(1.0, max(-1.0, 1.0 - max(max_distance, 1e-6)))
    p = math.acos(cos) / math.pi
    if p >= 0.5:  # a row at 90 degrees or more: a sketch cannot tell it from a random row
        return None
    log_p, log_q = math.log(p), math.log1p(-p)
    tail = 0.0  # P(H > c), summed from the top down
    for c in range(bits, -1, -1):
        term = math.exp(
            math.lgamma(bits + 1)
            - math.lgamma(c + 1)
            - math.lgamma(bits - c + 1)
            + c * log_p
            + (bits - c) * log_q
        )
        if tail + term > MISS_PROBABILITY:
            return c if c < bits else None  # P(H > c) = tail <= MISS_PROBABILITY
        tail += term
    return None  # pragma: no cover - the loop always returns


#: Bytes of one row's sketch (as stored: ``WORDS`` little-endian 64-bit words).
ROW_BYTES = BITS // 8
WORDS = _WORDS


@functools.lru_cache(maxsize=16)
def _planes(dim: int) -> npt.NDArray[np.float32]:
    rng = default_rng(_SEED + dim)
    planes = rng.standard_normal((dim, BITS)).astype(np.float32)
    planes.flags.writeable = False
    return planes


@functools.lru_cache(maxsize=16)
def fingerprint(dim: int) -> bytes:
    """8 bytes naming the hyperplanes of dimension ``dim``: sketches stored by one process are
    used by another only if both drew the same planes (numpy does not promise that its random
    streams stay the same across versions)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(BITS.to_bytes(4, "little"))
    digest.update(_planes(dim).astype("<f4").tobytes())
    return digest.digest()


class Sketches:
    """Sketches of the first ``size`` rows of a partition, kept as 64-bit words per column
    (``words[w, row]``) so a scan is a few contiguous passes."""

    def __init__(self, dim: int) -> None:
        self._planes = _planes(dim)
        self._words: npt.NDArray[np.uint64] = np.zeros((_WORDS, 1024), dtype=np.uint64)
        self.size = 0

    @classmethod
    def from_words(cls, dim: int, words: npt.NDArray[np.uint64], capacity: int) -> Sketches:
        """Sketches read from storage: ``words`` is ``(WORDS, count)``, as :meth:`words`
        gives them; room is made for ``capacity`` rows."""
        made = cls(dim)
        count = words.shape[1]
        made._words = np.zeros((_WORDS, max(capacity, count, 1)), dtype=np.uint64)
        made._words[:, :count] = words
        made.size = count
        return made

    def words(self, indices: npt.NDArray[np.intp] | None = None) -> npt.NDArray[np.uint64]:
        """The sketches of rows ``indices`` (all rows: ``None``) as ``(WORDS, count)``, the
        layout they are scanned in (so storing and reading them copies rows of words)."""
        words = self._words[:, : self.size] if indices is None else self._words[:, indices]
        return np.ascontiguousarray(words)

    def _encode(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
        signs = np.ascontiguousarray(np.packbits(vectors @ self._planes > 0, axis=-1))
        return signs.view(np.uint64)  # (rows, _WORDS)

    def extend(self, vectors: npt.NDArray[np.float32]) -> None:
        """Sketch the rows that follow the ones already sketched."""
        needed = self.size + len(vectors)
        if needed > self._words.shape[1]:
            grown = np.zeros((_WORDS, max(needed, 2 * self._words.shape[1])), dtype=np.uint64)
            grown[:, : self.size] = self._words[:, : self.size]
            self._words = grown
        for start in range(0, len(vectors), _CHUNK):
            chunk = vectors[start : start + _CHUNK]
            at = self.size + start
            self._words[:, at : at + len(chunk)] = self._encode(chunk).T
        self.size = needed

    def within(
        self, query: npt.NDArray[np.float32], max_distance: float
    ) -> npt.NDArray[np.intp] | None:
        """Rows that may be within ``max_distance`` of the unit vector ``query`` (ascending);
        ``None`` when the distance is too wide for sketches to rule any row out."""
        cutoff = hamming_cutoff(round(float(max_distance), 9))
        if cutoff is None:
            return None
        code = self._encode(query[np.newaxis, :])[0]
        size = self.size
        distance = np.zeros(size, dtype=np.uint16)
        differing = np.empty(size, dtype=np.uint64)
        counted = np.empty(size, dtype=np.uint8)
        for word in range(_WORDS):
            np.bitwise_xor(self._words[word, :size], code[word], out=differing)
            np.bitwise_count(differing, out=counted)
            distance += counted
        return np.flatnonzero(distance <= cutoff)


def available() -> bool:
    """Sketches need ``numpy.bitwise_count`` (numpy 2.0); older numpy scans every row."""
    return hasattr(np, "bitwise_count")
