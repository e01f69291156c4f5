"""The Lua language layer: sandbox and pipeline definitions (no containers here)."""
