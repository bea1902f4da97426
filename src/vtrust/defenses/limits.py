"""Query limits: refuse a client once it has asked more than its budget."""

from __future__ import annotations

from dataclasses import dataclass

from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.oracle import ALLOW, Decision, QueryDefense, Verdict


@dataclass(frozen=True)
class QueryLimitParams:
    max_queries: int = 1000

    def __post_init__(self) -> None:
        if self.max_queries < 0:
            raise InputError(f"max_queries must be non-negative, got {self.max_queries}")


class QueryLimit(QueryDefense):
    """Answer each client's first ``max_queries`` queries, then refuse it."""

    name = "query-limit"

    def __init__(self, params: QueryLimitParams = QueryLimitParams()) -> None:
        self.params = params
        self.seen: dict[str, int] = {}

    def observe(self, client_id, x, probs):
        before = self.seen.get(client_id, 0)
        self.seen[client_id] = before + len(x)
        allowed = self.params.max_queries - before
        if allowed >= len(x):
            return ALLOW
        return Decision(
            Verdict.REFUSE, at=max(allowed, 0), reason=f"budget of {self.params.max_queries}"
        )


register("defenses", "query-limit", QueryLimitParams, "refuse a client past a query budget")(
    QueryLimit
)
