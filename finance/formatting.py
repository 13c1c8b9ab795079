"""How amounts, times and bank text are shown: R$ 1.234,56 and $1,234.56; missing values never crash a page; bank text
(descriptions, merchants, account, institution and category names, notes, providers' messages) reads literally
wherever Streamlit renders Markdown or plotly renders HTML: it is data, never markup."""

from __future__ import annotations

import html
import re
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

_STYLES: dict[str, tuple[str, str, str, bool]] = {
    # currency: (symbol, thousands separator, decimal separator, space after symbol)
    "BRL": ("R$", ".", ",", True),
    "USD": ("$", ",", ".", False),
    "EUR": ("€", ".", ",", True),
    "GBP": ("£", ",", ".", False),
}


def format_money(amount: Decimal | float | int | None, currency: str) -> str:
    """A signed amount with the currency's symbol and separators; unknown currencies show their code."""
    if amount is None or amount != amount:  # None or NaN
        return "—"
    value = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    symbol, thousands, decimal_sep, space = _STYLES.get(currency, (currency, ",", ".", True))
    whole, cents = f"{abs(value):,.2f}".split(".")
    whole = whole.replace(",", thousands)
    sign = "-" if value < 0 else ""
    return f"{sign}{symbol}{' ' if space else ''}{whole}{decimal_sep}{cents}"


def _group(whole: str, thousands: str) -> str:
    """Digits with `thousands` every three from the right."""
    return f"{int(whole):,}".replace(",", thousands)


def format_rate(rate: Decimal | float | int | None, from_currency: str, to_currency: str) -> str:
    """"1 USD = R$ 5,4321": one unit of `from_currency` in `to_currency` in the target currency's style, so a rate
    reads like the money it converts into; 6 significant digits below 1 (up to 12 decimals), else 6 decimals,
    trailing zeros dropped down to 2."""
    if rate is None or rate != rate:
        return "—"
    value = Decimal(str(rate))
    places = 6 if value == 0 or abs(value) >= 1 else min(12, 5 - value.adjusted())
    value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    symbol, thousands, decimal_sep, space = _STYLES.get(to_currency, (to_currency, ",", ".", True))
    whole, fraction = f"{abs(value):f}".split(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    sign = "-" if value < 0 else ""
    return f"1 {from_currency} = {sign}{symbol}{' ' if space else ''}{_group(whole, thousands)}{decimal_sep}{fraction}"


def format_when(value: datetime | date | None, fmt: str = "%Y-%m-%d %H:%M", missing: str = "never") -> str:
    """A time or date, or `missing` for None and pandas' NaT (which is not None but has no strftime)."""
    if value is None or value != value:  # NaT compares unequal to itself
        return missing
    return value.strftime(fmt)


_ASCII_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
_AUTOLINK_BREAK = re.compile(r"(?<=[:@])(?=\S)|(?=\.\w)")
WORD_JOINER = "\u2060"


def escape_markdown(text: str) -> str:
    """`text` (bank text, say) shown literally by every element that renders Markdown (st.markdown, captions,
    the st.warning family, toasts, widget and metric labels, radio options, tabs, expanders, st.table cells, help
    tooltips): nothing in it can draw a link, an image, a heading, formatting, a colour, an icon or LaTeX.

    Whitespace runs become one space (a line break could start a heading or a code block; the browser would show
    one space anyway); every ASCII punctuation character is backslash-escaped (CommonMark shows an escaped one
    as itself, `&` included, so entities stay text); an invisible word joiner after a `:` or `@` followed by text
    and before a `.` that joins two words (none at a sentence's end) stops what Streamlit finds in the parsed text,
    escapes or not: web addresses and e-mail addresses turned into links, `:material/…:` icons."""
    flat = " ".join(str(text).split())
    return _ASCII_PUNCTUATION.sub(r"\\\1", _AUTOLINK_BREAK.sub(WORD_JOINER, flat))


def escape_plot_text(text: object) -> str:
    """`text` (bank text, say) shown literally in a plotly figure's title, axis and tick labels, legend, node labels
    and hovers: plotly draws the tags of a string (<a href>, <b>, <i>, <br>, <span style>, …) and decodes its
    entities, so `&`, `<` and `>` are escaped. Bank text never goes into a hovertemplate or texttemplate (its `%{…}`
    would be read as a field): it goes in as data, which plotly substitutes once and never reads again."""
    return html.escape(str(text), quote=False)
