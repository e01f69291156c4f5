"""Builders shared by the store and queue tests (plain functions, not fixtures)."""

from __future__ import annotations

from rivet.domain import InputDef, PipelineDefinition, RunnerTag, StageDef
from rivet.store import Database
from rivet.store import pipelines as pipeline_store
from rivet.store import runners as runner_store
from rivet.store.pipelines import PipelineVersion


def definition(
    name: str = "demo",
    *,
    stages: tuple[str, ...] = ("build", "test"),
    tags: dict[str, str] | None = None,
    plugins: tuple[str, ...] = (),
    inputs: tuple[InputDef, ...] = (),
) -> PipelineDefinition:
    return PipelineDefinition(
        name=name,
        stages=tuple(StageDef(s) for s in stages),
        inputs=inputs,
        tags=tuple(RunnerTag(k, v) for k, v in (tags or {}).items()),
        plugins=plugins,
    )


def store_version(db: Database, spec: PipelineDefinition) -> PipelineVersion:
    with db.write() as tx:
        pipeline_store.create_version(
            tx.conn, spec, f"-- {spec.name}", f"{spec.name}.lua", created_by="anonymous"
        )
    with db.read() as conn:
        return pipeline_store.get_version(conn, spec.name)


def make_runner(db: Database, name: str = "runner") -> str:
    with db.write() as tx:
        return runner_store.create_runner(tx.conn, name, f"hash-{name}", {}, [])
