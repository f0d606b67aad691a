"""Log lines that cannot flood the disk: identical warnings are rate-limited with a count, long lines cut.

A daemon runs for months under journald or a log file; one message repeated in a loop (a library
warning per watched folder, a failing disk) must cost one line a minute, not gigabytes. The
first occurrence of a warning is logged; identical ones within `window` seconds are counted, and
the next one logged after the window says how many were left out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

WINDOW = 60.0  # seconds during which an identical warning is only counted
MAX_CHARS = 2000  # a longer message is cut (watchdog's warnings reached 43 KB each)
_MAX_KEYS = 10_000  # distinct messages remembered; past that the oldest are forgotten

_once_lock = threading.Lock()
_once_keys: set[Hashable] = set()


def once(logger: logging.Logger, level: int, key: Hashable, msg: str, *args: object) -> None:
    """Log `msg` the first time `key` is seen in this process, never again."""
    with _once_lock:
        if key in _once_keys:
            return
        if len(_once_keys) >= _MAX_KEYS:
            _once_keys.clear()
        _once_keys.add(key)
    logger.log(level, msg, *args)


class RateLimit(logging.Filter):
    """A handler filter: warnings and errors repeated word for word are logged once per window, with a count."""

    def __init__(self, window: float = WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # -> (logged at, left out since)

    def filter(self, record: logging.LogRecord) -> bool:
        """False to drop the record; a kept record may be cut and may carry the count of those left out."""
        message = record.getMessage()
        if len(message) > MAX_CHARS:
            message = f"{message[:MAX_CHARS]}... ({len(message) - MAX_CHARS} more characters)"
            record.msg, record.args = message, ()
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, message)
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.window:
                self._seen[key] = (seen[0], seen[1] + 1)
                return False
            if len(self._seen) >= _MAX_KEYS:
                for old in sorted(self._seen, key=lambda k: self._seen[k][0])[: _MAX_KEYS // 2]:
                    del self._seen[old]
            self._seen[key] = (now, 0)
        if seen is not None and seen[1]:
            record.msg, record.args = f"{message} (and {seen[1]} identical before, not logged)", ()
        return True
