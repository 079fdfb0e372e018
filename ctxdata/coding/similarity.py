"""Cheap, deterministic text similarity: word shingles, MinHash signatures, exact Jaccard.

Python's `hash()` is salted per process, so shingles are hashed with crc32: the same text gives
the same signature in every run, which keeps pair mining (and so the shards) reproducible.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

_WORD = re.compile(r"[A-Za-z0-9_]+")
_PRIME = np.uint64((1 << 61) - 1)
NUM_PERM = 64


def shingles(text: str, n: int = 3, limit: int = 4000) -> set[int]:
    """crc32 hashes of lower-cased word n-grams (the first `limit` words only: issues can be huge)."""
    words = _WORD.findall(text.lower())[:limit]
    if len(words) < n:
        return {zlib.crc32(" ".join(words).encode())} if words else set()
    return {zlib.crc32(" ".join(words[i : i + n]).encode()) for i in range(len(words) - n + 1)}


def _permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, (1 << 61) - 1, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, (1 << 61) - 1, size=num_perm, dtype=np.uint64)
    return a, b


_A, _B = _permutations(NUM_PERM)


def minhash(text: str) -> np.ndarray:
    """A NUM_PERM-long uint32 MinHash signature of the text's shingles (all-max for empty text)."""
    sh = shingles(text)
    if not sh:
        return np.full(NUM_PERM, np.iinfo(np.uint32).max, dtype=np.uint32)
    x = np.fromiter(sh, dtype=np.uint64, count=len(sh))[:, None]
    # (a*x + b) mod p; uint64 arithmetic wraps, which is fine for a hash family.
    hashed = (x * _A + _B) % _PRIME
    return (hashed.min(axis=0) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def line_minhash(text: str) -> np.ndarray:
    """A MinHash signature of the text's set of stripped, non-empty lines: estimates `line_jaccard` between two texts."""
    lines = set(map(str.strip, text.split("\n"))) - {""}
    if not lines:
        return np.full(NUM_PERM, np.iinfo(np.uint32).max, dtype=np.uint32)
    x = np.fromiter((zlib.crc32(line.encode("utf-8", "surrogatepass")) for line in lines), dtype=np.uint64, count=len(lines))[:, None]
    return (((x * _A + _B) % _PRIME).min(axis=0) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def minhash_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two MinHash signatures."""
    return float(np.mean(a == b))


def line_jaccard(a: str, b: str) -> float:
    """Exact Jaccard similarity of the two texts' sets of (stripped, non-empty) lines.

    Lines are the natural unit of a rendered trajectory (commands, output lines), and set
    operations on them run at C speed, which keeps this cheap on 16 KB contexts.
    """
    sa = set(map(str.strip, a.split("\n"))) - {""}
    sb = set(map(str.strip, b.split("\n"))) - {""}
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)
