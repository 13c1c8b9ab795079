"""Which rows of a file the store already has, so an import adds history without duplicating it.

A file row and a stored row describe the same transaction when they are in the same account, have the same amount
to the cent, are booked within DATE_WINDOW days of each other (a bank's file and an aggregator may date a purchase
a day or two apart), and their descriptions are similar (`similar`: after lower-casing, dropping accents and
punctuation, one contains the other as whole words, or they share at least half of the shorter one's telling words
— not digits nor GENERIC_WORDS such as "pix" or "compra" — or those words' characters agree at SIMILARITY or
more). Then the stored row wins: the file row is left out ("duplicate", or "already imported" when
the stored row came from an earlier import).

Same account, amount and dates but unlike descriptions is "ambiguous": the user decides (keep or skip); nothing is
guessed. Pairs are one to one and as many as there can be (a file of rows one day later than the provider's pairs
every row, not every other one); each row prefers the most similar, then nearest, stored row. Two identical real
purchases on one day stay two rows, and a file row is never the duplicate of a stored row another file row matched.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from difflib import SequenceMatcher
from enum import StrEnum
from functools import lru_cache

from finance.imports.text import normalise

DATE_WINDOW = 3
SIMILARITY = 0.75


class Verdict(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"  # a synced row describes it: the provider's row wins
    ALREADY_IMPORTED = "already imported"  # the same row (same key) or an earlier import's row describes it
    AMBIGUOUS = "ambiguous"  # a stored row with the same amount and dates but another description: the user decides


@dataclass(frozen=True, slots=True)
class Incoming:
    """A file row to place: `key` is its id-to-be."""

    key: str
    booked_date: date
    amount: Decimal
    description: str


@dataclass(frozen=True, slots=True)
class Stored:
    """A row of the account already in the store; `imported` when an earlier import brought it."""

    id: str
    booked_date: date
    amount: Decimal
    description: str
    imported: bool


@dataclass(frozen=True, slots=True)
class Placement:
    """What becomes of one file row, and the stored row that decided it (None for a new row)."""

    verdict: Verdict
    match: Stored | None = None


SHARED_WORDS = 0.5
GENERIC_WORDS = frozenset({
    "pix", "ted", "doc", "tev", "boleto", "compra", "compras", "cartao", "debito", "credito", "pagamento", "pgto",
    "pag", "transferencia", "transf", "enviado", "enviada", "recebido", "recebida", "pos", "card", "purchase",
    "payment", "debit", "credit", "transfer", "online", "de", "da", "do", "dos", "das", "e", "em", "com", "para",
    "the", "to", "from", "at", "of", "ltda", "sa", "me", "eireli", "inc", "llc",
})
"""Words that say how money moved, not with whom: two PIX to different people must not look alike."""


def _words(text: str) -> list[str]:
    return [w for w in text.split() if w not in GENERIC_WORDS and not w.isdigit()]


@lru_cache(maxsize=65_536)  # a statement repeats its texts (fees, salary, the same shops): compare each pair once
def _measures(a: str, b: str) -> tuple[bool, float, float]:
    """(one contains the other, share of the shorter one's telling words found in the other, character similarity
    of the telling words), after `normalise`."""
    x, y = normalise(a), normalise(b)
    if not x or not y:
        return False, 0.0, 0.0
    contains = f" {x} " in f" {y} " or f" {y} " in f" {x} "
    words_x, words_y = _words(x), _words(y)
    if not words_x or not words_y:
        return contains, 0.0, 0.0
    shared = len(set(words_x) & set(words_y)) / min(len(set(words_x)), len(set(words_y)))
    return contains, shared, SequenceMatcher(None, " ".join(words_x), " ".join(words_y), autojunk=False).ratio()


def similarity(a: str, b: str) -> float:
    """How alike two descriptions are, from 0 to 1 (1: one contains the other)."""
    contains, shared, ratio = _measures(a, b)
    return 1.0 if contains else max(shared, ratio)


def similar(a: str, b: str) -> bool:
    """The descriptions can be the same transaction's (see the module's docstring)."""
    contains, shared, ratio = _measures(a, b)
    return contains or shared >= SHARED_WORDS or ratio >= SIMILARITY


def place(rows: list[Incoming], stored: list[Stored]) -> list[Placement]:
    """A placement per file row, in the rows' order (see the module's docstring for the rules)."""
    placements: list[Placement | None] = [None] * len(rows)
    by_id = {s.id: s for s in stored}
    for i, row in enumerate(rows):
        if row.key in by_id:  # this very row was imported before (the same file, or an overlapping one)
            placements[i] = Placement(Verdict.ALREADY_IMPORTED, by_id[row.key])
    claimed = {p.match.id for p in placements if p is not None and p.match is not None}
    by_day: dict[tuple[Decimal, date], list[Stored]] = defaultdict(list)
    for s in stored:
        if s.id not in claimed:
            by_day[(s.amount, s.booked_date)].append(s)
    near: dict[int, list[Stored]] = {}
    alike: dict[int, list[str]] = {}  # each row's similar stored rows, most similar and nearest first
    best: dict[int, tuple[float, int]] = {}  # each row's best (-similarity, days)
    for i, row in enumerate(rows):
        if placements[i] is not None:
            continue
        near[i] = [s for shift in range(-DATE_WINDOW, DATE_WINDOW + 1)
                   for s in by_day.get((row.amount, row.booked_date + timedelta(days=shift)), ())]
        scored = sorted((-similarity(row.description, s.description), abs((s.booked_date - row.booked_date).days),
                         s.id) for s in near[i] if similar(row.description, s.description))
        if scored:
            alike[i] = [stored_id for *_, stored_id in scored]
            best[i] = scored[0][:2]
    owner = _pairs(alike, sorted(alike, key=lambda i: (best[i], i)))
    for stored_id, i in owner.items():
        match = by_id[stored_id]
        placements[i] = Placement(Verdict.ALREADY_IMPORTED if match.imported else Verdict.DUPLICATE, match)
    for i, row in enumerate(rows):
        if placements[i] is None:
            left = [s for s in near.get(i, ()) if s.id not in owner]
            placements[i] = (Placement(Verdict.AMBIGUOUS, min(left, key=lambda s: abs(
                (s.booked_date - row.booked_date).days))) if left else Placement(Verdict.NEW))
    return [p for p in placements if p is not None]


def _pairs(alike: dict[int, list[str]], order: list[int]) -> dict[str, int]:
    """As many (stored row → file row) pairs as there can be, one to one (augmenting paths, breadth first, so no
    recursion however long a run of equal rows is); each row takes its preferred free stored row first, and rows
    are served in `order` (best match first)."""
    owner: dict[str, int] = {}
    taken: dict[int, str] = {}
    for start in order:
        queue, came_from, seen = [start], {}, set()
        for row in queue:
            free = next((s for s in alike[row] if s not in seen and s not in owner), None)
            for stored_id in alike[row]:
                if stored_id not in seen:
                    seen.add(stored_id)
                    came_from[stored_id] = row
            if free is not None:
                while True:  # flip the path back to `start`
                    row, previous = came_from[free], taken.get(came_from[free])
                    owner[free], taken[row] = row, free
                    if row == start:
                        break
                    free = previous
                break
            queue += [owner[s] for s in alike[row] if came_from.get(s) == row]
    return owner
