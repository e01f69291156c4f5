"""Caps on what pipeline code can make the runner hold or send, in one place.

Everything a job produces passes through the runner's Python heap before it reaches
the server or the terminal, and pipeline code is untrusted: without a cap, one
``log.info`` of a huge string, an ``output.set`` loop or a directory of millions of
files would grow the runner process until the host kills it. Each cap here is a
documented constant (docs/lua-reference.md, "Errors and limits"); caps an admin may
want to change are policy keys instead (``process.max_capture_bytes``, ``fs.*``,
``http.max_*``). Sizes derived from the Lua memory limit use the job's sandbox
limits (``RIVET_LUA_MEMORY_MIB``), because a text handed to Lua must fit there.

Every cap either splits without loss (log lines) or fails the call with an error
naming the cap; nothing is dropped silently.
"""

from __future__ import annotations

from rivet import limits

__all__ = [
    "CAPTURE_SHARE",
    "JSON_DECODE_SHARE",
    "JSON_ENCODE_SHARE",
    "MAX_ARG_BYTES",
    "MAX_COMMAND_BYTES",
    "MAX_DIR_ENTRIES",
    "MAX_ERROR_CHARS",
    "MAX_JSON_ITEMS",
    "MAX_OUTPUTS",
    "MAX_OUTPUTS_BYTES",
    "MAX_OUTPUT_NAME_CHARS",
    "MAX_PARALLEL",
    "clip",
]

KiB = 1 << 10
MiB = 1 << 20

# Caps that the server enforces too are the server's own numbers (rivet.limits), never
# a copy: a job may then send whatever it was allowed to make. One log event is at
# most rivet.limits.MAX_LOG_MESSAGE characters, the server's cap on a log line (64 Ki;
# rivet.engine.events.log_lines cuts longer lines into consecutive events of that
# size, as a command's output is read: 64 KiB at a time), so nothing is lost and the
# server, the shipper's buffer and a terminal only ever see bounded lines.

# A stage's or job's error as stored on the job (and sent with the stage update and
# the completion). The whole message is always in the job's log; the stored copy is
# cut with a note saying so (clip: the note comes on top), well within the server's
# cap on an error, limits.MAX_ERROR (64 Ki characters).
MAX_ERROR_CHARS = 16 * KiB

# output.set: values shared between stages and reported with the job (like CI
# "outputs": versions, ids, paths). Bigger data belongs in a workspace file.
# The server's caps (rivet.limits), so that it stores whatever a job may set.
MAX_OUTPUTS = limits.MAX_OUTPUTS
MAX_OUTPUT_NAME_CHARS = limits.MAX_OUTPUT_NAME
MAX_OUTPUTS_BYTES = limits.MAX_OUTPUTS_BYTES  # names and values together, UTF-8

# fs.list, fs.glob and fs.copy refuse a directory with more entries than this (the
# names would be held in memory at once); fs.glob also caps its results (fs_module.tree).
MAX_DIR_ENTRIES = 100_000

# process.run: Linux refuses a single argument or environment string of 128 KiB or
# more (MAX_ARG_STRLEN) and a whole command line plus environment above ARG_MAX
# (2 MiB with the usual 8 MiB stack); podman's own arguments take some of that room.
MAX_ARG_BYTES = 128 * KiB - 1
MAX_COMMAND_BYTES = 1 * MiB

# process.parallel runs at most this many commands at once, whatever ``max`` says
# (each waiting call holds a copy of its options in the runner).
MAX_PARALLEL = 64

# json.encode builds at most 1/JSON_ENCODE_SHARE of the Lua memory limit of text and
# json.decode reads at most 1/JSON_DECODE_SHARE of it (decoded tables take several
# times the text's size); both handle at most MAX_JSON_ITEMS array items and object
# members, all levels together.
JSON_ENCODE_SHARE = 4
JSON_DECODE_SHARE = 16
MAX_JSON_ITEMS = 1_000_000

# The default of process.max_capture_bytes: this share of the Lua memory limit, the
# same room fs.max_read_bytes leaves (64 MiB of the default 256 MiB).
CAPTURE_SHARE = 4


def clip(text: str, limit: int, where: str) -> str:
    """``text`` cut to about ``limit`` characters, with a note naming how much was cut
    and ``where`` the whole text is; unchanged when it fits."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters; the whole text is {where}]"
