"""The Lua ``http`` module: HTTP calls from the runner process, under the ``[http]`` policy.

``api`` holds the functions pipelines call and ``install``; ``options`` parses their
arguments; ``guard`` checks URLs and resolved addresses against the policy;
``transport`` connects only to checked addresses; ``body`` reads a response under
its size cap; ``rate_limit`` is the job's token bucket.
"""

from __future__ import annotations

from rivet.engine.modules.http_module.api import install

__all__ = ["install"]
