"""Log lines a flood cannot turn into a full disk: each message one line of bounded length (control characters such
as CR and LF escaped, so a sender's text cannot forge a line), and a message logged again and again — the same
logger and template — kept only `per_minute` times a minute, the next one kept saying how many were left out."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from finance.i18n import ngettext

MAX_CHARS = 500
"""The longest message kept; longer ones are cut and end with an ellipsis."""
PER_MINUTE = 10
"""How many times a minute the same message template is logged before the rest are counted instead."""
MAX_TEMPLATES = 1024
"""How many message templates are counted at once (the least recently seen is forgotten first)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: str, max_chars: int = MAX_CHARS) -> str:
    """`text` on one line (control characters written as escapes: a newline becomes \\n) and at most `max_chars`
    characters long."""
    line = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return line if len(line) <= max_chars else line[:max_chars - 1] + "…"


class BoundedLines(logging.Filter):
    """A logging filter that keeps each record to one bounded line and drops repeats beyond `per_minute` per
    (logger, template) each minute; the first record of a template kept after some were dropped says how many.

    Attached to a handler it covers every logger that handler serves; attached to a logger, only that logger's own
    records (a logger's filters are not applied to its children's records)."""

    def __init__(self, *, max_chars: int = MAX_CHARS, per_minute: int = PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._max_chars = max_chars
        self._per_minute = per_minute
        self._clock = clock
        self._windows: OrderedDict[tuple[str, str], list[float]] = OrderedDict()  # → [start, kept, dropped]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:self._max_chars])
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            dropped = 0
            if window is None or now - window[0] >= 60:
                dropped = int(window[2]) if window is not None else 0
                self._windows[key] = [now, 1, 0]
            elif window[1] >= self._per_minute:
                window[2] += 1
                return False
            else:
                window[1] += 1
            self._windows.move_to_end(key)
            while len(self._windows) > MAX_TEMPLATES:
                self._windows.popitem(last=False)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the template: keep what there is
            message = f"{record.msg} {record.args!r}"
        line = one_line(message, self._max_chars)
        if dropped:
            line += " " + ngettext("({count} more like this was left out in the minute before)",
                                   "({count} more like this were left out in the minute before)",
                                   dropped).format(count=dropped)
        record.msg, record.args = line, None
        return True
