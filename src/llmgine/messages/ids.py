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
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
_lock = threading.Lock()
_pool = ""
"""Hex digits of random bytes; each id takes 32."""
_offset = 0


def _reset() -> None:
    global _pool, _offset
    _pool, _offset = "", 0


os.register_at_fork(after_in_child=_reset)


def new_id() -> str:
    """A random UUID (version 4) as a string, like ``str(uuid.uuid4())``."""
    global _pool, _offset
    with _lock:
        if _offset + 32 > len(_pool):
            _pool, _offset = os.urandom(_POOL_BYTES).hex(), 0
        h = _pool[_offset : _offset + 32]
        _offset += 32
    # version 4 in the 13th digit, the RFC 4122 variant (8, 9, a or b) in the 17th
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
