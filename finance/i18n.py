"""The interface language: gettext catalogs (Babel) and locale-aware dates and numbers (a leaf: imports nothing of
the project, and Babel only where it is used, so that English start-up paths stay on the standard library).

- `_("Balance")` translates now, in the current language; `ngettext(one, many, n)` picks the plural form.
- `N_("Balance")` is for text defined at import time (module constants, advice, labels): a `LazyText` translated
  each time it is shown, so one constant serves every session in its own language.
- The current language: `using(code)` for a block (tests, the CLI), else the source the UI registers
  (`set_source`: the Streamlit session's choice), else the process default (`set_default`, from FINANCE_LANG/LANG).
- Catalogs: finance/locale/<lang>/LC_MESSAGES/messages.po, and each aggregator's own texts in its folder
  (finance/providers/<name>/locale/…: only that folder names its provider); read as one. The .mo files are compiled
  from them when missing or older (at start, and by the tests), never committed.

Amounts keep their account's currency conventions (finance/formatting.py); only words, dates and plain numbers
follow the interface language.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from gettext import NullTranslations
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel.messages.catalog import Catalog

# Babel is imported where it is used: English text needs none of it, so the light paths (`python -m finance query`,
# finance.control) start with the standard library only.

LOCALE_DIR = Path(__file__).with_name("locale")
CATALOG_DIRS = (LOCALE_DIR, *sorted(Path(__file__).parent.glob("providers/*/locale")))
"""The shared catalog first, then each aggregator's."""
DOMAIN = "messages"
LANGUAGES: dict[str, str] = {"en": "English", "pt_BR": "Português (Brasil)"}
"""The interface languages, each named in itself (as the language selector shows them)."""
DEFAULT = "en"

_override: ContextVar[str | None] = ContextVar("finance_language", default=None)
_source: Callable[[], str | None] | None = None
_default = DEFAULT


def negotiate(preferred: str | list[str] | None) -> str | None:
    """The supported language closest to a browser's (`pt-BR`, `pt`, `en-US,en;q=0.9`, a list), or None."""
    if not preferred:
        return None
    if isinstance(preferred, str):
        preferred = [part.split(";")[0].strip() for part in preferred.split(",")]
    for tag in preferred:
        code = tag.replace("-", "_").split(".")[0].split("@")[0]  # en_US.UTF-8, ca_ES@valencia: as LANG has them
        if code in LANGUAGES:
            return code
        language = code.split("_")[0].lower()
        if language == "pt":  # pt, pt-PT, pt-AO: the Portuguese we have
            return "pt_BR"
        if language == "en":
            return "en"
    return None


def set_default(code: str | None) -> None:
    """The language of work done outside a session (the worker's messages, the CLI); unknown codes are ignored."""
    global _default
    _default = negotiate(code) or DEFAULT


def set_source(source: Callable[[], str | None] | None) -> None:
    """Where the current language comes from when no `using` block is open (the UI registers the session's)."""
    global _source
    _source = source


def current() -> str:
    """The language in force here and now."""
    code = _override.get()
    if code is None and _source is not None:
        code = _source()
    return code if code in LANGUAGES else _default


@contextmanager
def using(code: str) -> Iterator[None]:
    """Run a block in one language (a test, a CLI command, an e-mail written for someone)."""
    token = _override.set(negotiate(code) or DEFAULT)
    try:
        yield
    finally:
        _override.reset(token)


# -- catalogs ---------------------------------------------------------------------------------------------------

def compile_catalogs(*directories: Path) -> list[Path]:
    """Compile each messages.po (of `directories`, default every catalog) whose .mo is missing or older; the .mo
    files written. Written beside a temporary name and renamed, so a process reading it never sees half a file."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po_path in sorted(p for d in directories or CATALOG_DIRS for p in d.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po:
            catalog = read_po(po, locale=po_path.parent.parent.name)
        partial = mo_path.with_name(f".{mo_path.name}.{os.getpid()}")
        with partial.open("wb") as mo:
            write_mo(mo, catalog)
        partial.replace(mo_path)
        written.append(mo_path)
    return written


@cache
def _translations(code: str) -> NullTranslations:
    if code == DEFAULT:
        return NullTranslations()  # the msgids are the English text
    from babel.support import Translations

    try:
        compile_catalogs()
        parts = [Translations.load(str(d), [code], DOMAIN) for d in CATALOG_DIRS]
    except OSError:  # a read-only install: read the catalogs themselves
        parts = [_from_po(d / code / "LC_MESSAGES" / f"{DOMAIN}.po", code) for d in CATALOG_DIRS]
    merged, *others = parts  # the shared catalog carries the language's plural rule
    for part in others:
        if isinstance(merged, Translations) and isinstance(part, Translations):
            merged.merge(part)
    return merged


def _from_po(po_path: Path, code: str) -> NullTranslations:
    from babel.messages.pofile import read_po
    from babel.support import Translations

    if not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as po:
        return Translations(_mo_bytes(read_po(po, locale=code)))


def _mo_bytes(catalog: Catalog) -> io.BytesIO:
    """A catalog compiled in memory."""
    from babel.messages.mofile import write_mo

    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return buffer


def _(message: str) -> str:
    """`message` in the current language."""
    return _translations(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form for `n` in the current language (Portuguese counts 0 and 1 as singular)."""
    return _translations(current()).ngettext(singular, plural, n)


class LazyText:
    """Text translated when shown, for strings defined at import time. Behaves like the translated str where pages
    use it (str(), f-strings, `+`, `%`, `in` a dict, equality with the English text it marks)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __str__(self) -> str:
        return _(self.message)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return f"N_({self.message!r})"

    def __add__(self, other: object) -> str:
        return str(self) + str(other)

    def __radd__(self, other: object) -> str:
        return str(other) + str(self)

    def __mod__(self, values: object) -> str:
        return str(self) % values

    def __eq__(self, other: object) -> bool:
        return self.message == (other.message if isinstance(other, LazyText) else other)

    def __hash__(self) -> int:
        return hash(self.message)

    def format(self, *args: object, **kwargs: object) -> str:
        return str(self).format(*args, **kwargs)


def N_(message: str) -> LazyText:
    """Mark text defined at import time; it is translated each time it is shown."""
    return LazyText(message)


class Messages(dict[str, LazyText]):
    """Messages by code (a provider's error advice), each translated when it is looked up."""

    def __getitem__(self, key: str) -> str:  # type: ignore[override]
        return str(super().__getitem__(key))

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        found = super().get(key)
        return default if found is None else str(found)


# -- dates and numbers ------------------------------------------------------------------------------------------

def _babel_date(value: date | datetime, pattern: str, locale: str) -> str:
    from babel.dates import format_date

    return format_date(value, pattern, locale=locale)


def format_day(value: date | datetime | None, missing: str = "—") -> str:
    """`3 de março de 2026` / `March 3, 2026`."""
    return missing if value is None or value != value else _babel_date(value, "long", locale=current())


def format_short_day(value: date | datetime | None, missing: str = "—") -> str:
    """`3 de mar. de 2026` / `Mar 3, 2026`: a date in a table or a caption."""
    return missing if value is None or value != value else _babel_date(value, "medium", locale=current())


def format_month(value: date | datetime) -> str:
    """`mar. 2026` / `Mar 2026`."""
    return _babel_date(value, "MMM y", locale=current())


def format_long_month(value: date | datetime) -> str:
    """`março de 2026` / `March 2026`."""
    return _babel_date(value, "LLLL 'de' y" if current() == "pt_BR" else "LLLL y", locale=current())


def format_timestamp(value: datetime | None, missing: str | None = None) -> str:
    """`3 de mar. de 2026 14:05` / `Mar 3, 2026 14:05`: a moment, to the minute, in the current language."""
    if value is None or value != value:
        return _("never") if missing is None else missing
    return f"{_babel_date(value, 'medium', locale=current())} {value:%H:%M}"


def month_names(width: str = "wide") -> list[str]:
    """January..December (or their abbreviations) in the current language."""
    from babel.dates import get_month_names

    names = get_month_names(width, locale=current())
    return [names[i] for i in range(1, 13)]


def weekday_names(width: str = "wide") -> list[str]:
    """Monday..Sunday in the current language."""
    from babel.dates import get_day_names

    names = get_day_names(width, locale=current())
    return [names[i] for i in range(7)]


def format_number(value: float | int, decimals: int | None = None) -> str:
    """`1.234` / `1,234`; with `decimals`, exactly that many places."""
    from babel.numbers import format_decimal

    if decimals is None:
        return format_decimal(value, locale=current())
    return format_decimal(value, format=f"#,##0.{'0' * decimals}" if decimals else "#,##0", locale=current())


def format_period(start: date, end: date) -> str:
    """`3 de mar. de 2026 – 2 de abr. de 2026` / `Mar 3, 2026 – Apr 2, 2026`."""
    return f"{format_short_day(start)} – {format_short_day(end)}"


def number_separators() -> str:
    """The decimal sign and the thousands separator of the interface language, as Plotly's `separators` wants them
    (",." in Portuguese, ".," in English)."""
    from babel.numbers import get_decimal_symbol, get_group_symbol

    return get_decimal_symbol(current()) + get_group_symbol(current())
