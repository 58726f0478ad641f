"""Event ids: random version-4 UUID strings, drawn from a buffered random pool.

``str(uuid.uuid4())`` makes one ``os.urandom`` system call per id; on a busy
bus that call also gives up the GIL and waits to get it back. The pool reads
4 KiB at a time instead, and is refilled in a forked child so that no two
processes ever hand out the same ids.
"""

from __future__ import annotations

import os
import threading

_POOL_BYTES = 4096
_lock = threading.Lock()
_pool = b""
_offset = 0


def _reset() -> None:
    global _pool, _offset
    _pool, _offset = b"", 0


os.register_at_fork(after_in_child=_reset)


def new_id() -> str:
    """A random UUID (version 4) as a string, like ``str(uuid.uuid4())``."""
    global _pool, _offset
    with _lock:
        if _offset + 16 > len(_pool):
            _pool, _offset = os.urandom(_POOL_BYTES), 0
        raw = bytearray(_pool[_offset : _offset + 16])
        _offset += 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
