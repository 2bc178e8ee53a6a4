"""Exact counts of filtered customer lists, remembered until the customers change.

A search's ``totalCount`` counts the rows that match (for a common name, a bitmap heap scan
of half the table), and a client paging through one list asks for the same count on every
page. The compiled statement therefore reads the customers' *generation* (migration 0015: the
number of statements that changed them, which two snapshots share only if they see the same
customers) and is given the count this worker last saw for the same count statement with the
generation it was made at: while the generation is the same, the database returns that
count without counting (``sql.json_read.remembered_count``); otherwise it counts, and the
statement returns the new generation and count for the next request.

The check happens inside the statement, in its own snapshot, so the count is exactly what a
fresh count would give there: nothing is served on trust of a clock or a notification. The
memory is per worker and per database (an endpoint serves one); a later replica (issue 18)
needs its own, as its snapshots follow the WAL's commit order, not the primary's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

# A count statement and its parameters: one list, one filter.
CountKey = tuple[str, tuple[Hashable, ...]]


class CountMemory:
    """The last (generation, count) seen per count statement, least recently used out."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._known: OrderedDict[CountKey, tuple[int, int]] = OrderedDict()

    def get(self, key: CountKey) -> tuple[int, int] | None:
        """The (generation, count) last seen for ``key``, if any."""
        found = self._known.get(key)
        if found is not None:
            self._known.move_to_end(key)
        return found

    def known(self) -> dict[CountKey, tuple[int, int]]:
        """A copy of what is remembered (for /metrics-style inspection and tests)."""
        return dict(self._known)

    def learn(self, keys: Sequence[CountKey], values: Sequence[int]) -> None:
        """Keep what a statement returned: ``values`` holds a generation and a count per key,
        in the order of ``keys``."""
        for index, key in enumerate(keys):
            self._known[key] = (values[2 * index], values[2 * index + 1])
            self._known.move_to_end(key)
        while len(self._known) > self._size:
            self._known.popitem(last=False)
