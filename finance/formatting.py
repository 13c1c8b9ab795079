"""How amounts and times are shown: R$ 1.234,56 and $1,234.56; missing values never crash a page; text cells of a CSV
export never run as formulas."""

from __future__ import annotations

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


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_markdown(text: str) -> str:
    """`text` (bank text, say) shown literally by st.markdown and the st.warning family: every character that
    Markdown, LaTeX (`$`) or an autolink (`:`) would act on is backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
