"""Listing pipelines whose sources are large: the listing query as it is (no source
column) versus the same query also selecting the source (what it did before).

For each database (SQLite, and PostgreSQL when its URL is known): ``--pipelines``
pipelines are stored, each with ``--versions`` versions whose source is padded to
``--source-kib`` KiB (the API's cap is 1 MiB). Then both queries run alternately
(interleaved, so load on the machine hits both alike) ``--rounds`` times; the medians
and their ratio are printed.

Usage: .venv/bin/python bench/pipeline_listing.py [--pipelines 40] [--versions 3]
       [--source-kib 1000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from harness import backends, database

from rivet.lua.definition import load_definition
from rivet.store import Database, upgrade
from rivet.store import pipelines as store
from rivet.store.tables import pipeline_versions as pv
from rivet.store.tables import pipelines as p


def _fill(db: Database, count: int, versions: int, size: int) -> None:
    for n in range(count):
        stage = '{ name = "s", script = function() end }'
        source = f'return pipeline.define({{ name = "p{n}", stages = {{ {stage} }} }})\n'
        definition = load_definition(source, "p.lua")
        padded = source + "-- " + "x" * (size - len(source) - 3)
        for _ in range(versions):
            with db.write() as tx:
                store.create_version(tx.conn, definition, padded, "p.lua", created_by="admin")


def _with_source(db: Database) -> Any:
    """The listing as it was: the same join, also selecting every source."""
    counts = store._counts()
    query = (
        store._select(counts, with_source=True)
        .where(pv.c.version == counts.c.latest)
        .order_by(p.c.name)
    )
    with db.read() as conn:
        return [store._view(row) for row in conn.execute(query)]


def _now(db: Database) -> Any:
    with db.read() as conn:
        return store.list_latest(conn, limit=500).pipelines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=40)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--source-kib", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for kind in backends():
        with database(kind) as url:
            db = Database(url)
            upgrade(db)
            _fill(db, args.pipelines, args.versions, args.source_kib * 1024)
            timings: dict[str, list[float]] = {"now": [], "with source": []}
            for _ in range(args.rounds):
                for name, run in (("now", _now), ("with source", _with_source)):
                    started = time.perf_counter()
                    listed = run(db)
                    timings[name].append(time.perf_counter() - started)
                    assert len(listed) == args.pipelines
            now = statistics.median(timings["now"])
            before = statistics.median(timings["with source"])
            print(
                f"{kind}: {args.pipelines} pipelines × {args.versions} versions of "
                f"{args.source_kib} KiB: listing median {now * 1000:.1f} ms; "
                f"selecting sources too {before * 1000:.1f} ms; ratio {before / now:.1f}×"
            )
            db.close()


if __name__ == "__main__":
    main()
