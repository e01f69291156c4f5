"""Supervising Rivet's own processes: :mod:`.process` (children started in order,
waited for until ready, watched for crashes, stopped in reverse order) and
:mod:`.local` (a local server and runner: what ``rivet up`` runs). The CLI only wires
flags and signals to them; tests drive them directly."""

from __future__ import annotations

from rivet.supervisor.local import LocalPlan, LocalRivet
from rivet.supervisor.process import ChildSpec, Crashed, Supervisor

__all__ = ["ChildSpec", "Crashed", "LocalPlan", "LocalRivet", "Supervisor"]
