"""Which path answered each GraphQL read, and why the SQL compiler fell back (issue 14).

A fallback is not an error, but a silent one hides a slow path: each is counted by reason and
logged at debug level. The counters are this worker's (each uvicorn worker keeps its own);
``/metrics`` serves them in Prometheus' text format.
"""

from __future__ import annotations

import logging
from collections import Counter

_log = logging.getLogger("cdm.api.reads")

SQL = "sql"  # one statement built the JSON
PYTHON = "python"  # the compiled Python plans (api/compiled.py)
GRAPHQL_CORE = "graphql-core"


class ReadPaths:
    """Counters of answered queries by path, and of SQL-compiler fallbacks by reason."""

    __slots__ = ("answered", "fallbacks")

    def __init__(self) -> None:
        self.answered: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()

    def answer(self, path: str) -> None:
        """Count a query answered by ``path``."""
        self.answered[path] += 1

    def fall_back(self, operation: str | None, reason: str) -> None:
        """Count (and log) a query the SQL compiler left to the Python paths."""
        self.fallbacks[reason] += 1
        _log.debug("query %s not answered in SQL: %s", operation or "(anonymous)", reason)

    def exposition(self) -> str:
        """The counters in Prometheus' text exposition format."""
        lines = [
            "# HELP cdm_graphql_queries_total GraphQL queries answered, by execution path.",
            "# TYPE cdm_graphql_queries_total counter",
            *(
                f'cdm_graphql_queries_total{{path="{p}"}} {n}'
                for p, n in sorted(self.answered.items())
            ),
            "# HELP cdm_graphql_sql_fallbacks_total Queries the SQL compiler left to Python.",
            "# TYPE cdm_graphql_sql_fallbacks_total counter",
            *(
                f'cdm_graphql_sql_fallbacks_total{{reason="{_label(r)}"}} {n}'
                for r, n in sorted(self.fallbacks.items())
            ),
        ]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


READS = ReadPaths()  # this worker's
