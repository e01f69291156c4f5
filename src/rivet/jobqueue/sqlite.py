"""SQLite queue: the shared atomic claim plus a ``json_each`` match; signals stay in-process.

SQLite serves one orchestrator process (the embedded default), so the in-process
:class:`~rivet.jobqueue.signals.Signals` reach every waiter and nothing crosses processes.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, and_, text
from sqlalchemy.sql.selectable import NamedFromClause

from rivet.jobqueue.base import Offer
from rivet.jobqueue.sql import SqlQueue

__all__ = ["SqliteQueue"]

# Every required tag has an equal offered tag, and every required plugin is offered.
# Comparing json_each rows (not json_extract paths) is correct for any key spelling.
_MATCH = """
NOT EXISTS (
    SELECT 1 FROM json_each({job}.required_tags) AS req
    WHERE NOT EXISTS (
        SELECT 1 FROM json_each(:offer_tags) AS have
        WHERE have.key = req.key AND have.value = req.value))
AND NOT EXISTS (
    SELECT 1 FROM json_each({job}.required_plugins) AS need
    WHERE need.value NOT IN (SELECT value FROM json_each(:offer_plugins)))
"""


class SqliteQueue(SqlQueue):
    """:class:`rivet.jobqueue.JobQueue` for SQLite (see the Protocol for the contract)."""

    def match(self, candidate: NamedFromClause, offer: Offer) -> ColumnElement[bool]:
        clause = text(_MATCH.format(job=candidate.name)).bindparams(**self.match_params(offer))
        return and_(clause)

    def match_params(self, offer: Offer) -> dict[str, Any]:
        return {
            "offer_tags": json.dumps(dict(offer.tags)),
            "offer_plugins": json.dumps(list(offer.plugins)),
        }
