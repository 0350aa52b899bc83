"""``dedup``: exact and near-duplicate problems, across the whole dataset.

Dedup is about *problems*, not samples: a dataset holds n generations of one
problem (same ``problem_id`` and prompt, different ``sample_id``), and those
are never duplicates of each other. So the filter works at problem level:

1. Rows are grouped by ``problem_id`` (the normalized prompt when a row has
   none); a problem is judged once, at its first row, in dataset order.
2. ``exact_duplicate``: its normalized prompt (``datagen.records.normalize_prompt``:
   NFKC, case-folded, whitespace collapsed) hashes like an earlier problem's.
3. ``near_duplicate``: MinHash LSH over word shingles of the prompt
   (datasketch) finds an earlier kept problem whose estimated Jaccard
   similarity is at least ``near_threshold``.
4. Every row of a duplicate problem is dropped; every row of a surviving
   problem is kept (all its samples).

The first occurrence wins, so the result depends on row order; the runner
runs this on the whole dataset at once (never per shard), after the filters
that judge problems against a fixed index (``decontam``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from datagen.records import normalize_prompt
from filters.base import KEEP, DatasetFilter, Decision, drop
from filters.config import DedupConfig

_WORD = re.compile(r"\w+")


def shingles(prompt: str, k: int) -> set[bytes]:
    """Word k-shingles of the normalized prompt (punctuation ignored)."""
    words = _WORD.findall(normalize_prompt(prompt))
    if len(words) <= k:
        return {" ".join(words).encode()}
    return {" ".join(words[i:i + k]).encode() for i in range(len(words) - k + 1)}


class DedupFilter(DatasetFilter):
    """Reasons: ``exact_duplicate``, ``near_duplicate``."""

    name = "dedup"

    def __init__(self, config: DedupConfig | None = None):
        """Settings from ``config`` (its defaults are the filter's: ``filters.config.DedupConfig``)."""
        config = config or DedupConfig()
        self.exact = config.exact
        self.near_threshold = config.near_threshold
        self.shingle_words = config.shingle_words
        self.num_perm = config.num_perm
        self._permutations = None

    def check_all(self, records: Sequence[Mapping[str, Any]]) -> list[Decision]:
        lsh = None
        if self.near_threshold is not None:
            from datasketch import MinHashLSH

            lsh = MinHashLSH(threshold=self.near_threshold, num_perm=self.num_perm)
        hashes: dict[str, str] = {}  # normalized prompt hash -> first problem key
        minhashes: dict[str, Any] = {}
        by_problem: dict[str, Decision] = {}
        out = []
        for record in records:
            prompt = record.get("prompt") or ""
            key = record.get("problem_id") or normalize_prompt(prompt)
            if key not in by_problem:
                by_problem[key] = self._judge(key, prompt, hashes, lsh, minhashes)
            out.append(by_problem[key])
        return out

    def _judge(self, key: str, prompt: str, hashes: dict, lsh: Any, minhashes: dict) -> Decision:
        digest = hashlib.sha1(normalize_prompt(prompt).encode()).hexdigest()
        if self.exact and digest in hashes:
            return drop("exact_duplicate", f"same normalized prompt as problem {hashes[digest]}")
        hashes.setdefault(digest, key)
        if lsh is None:
            return KEEP
        from datasketch import MinHash

        if self._permutations is None:
            # Generating the permutations is most of a MinHash's construction
            # cost; every MinHash of one run shares them (same seed anyway).
            first = MinHash(num_perm=self.num_perm, seed=1)
            self._permutations, self._scheme = first.permutations, first.scheme
        mh = MinHash(num_perm=self.num_perm, seed=1, permutations=self._permutations, scheme=self._scheme)
        mh.update_batch(list(shingles(prompt, self.shingle_words)))
        for other in lsh.query(mh):
            similarity = mh.jaccard(minhashes[other])
            if similarity >= self.near_threshold:
                return drop("near_duplicate", f"Jaccard ~{similarity:.2f} with problem {other} >= {self.near_threshold}")
        if key not in minhashes:
            minhashes[key] = mh
            lsh.insert(key, mh)
        return KEEP
