"""How amounts and times are shown: R$ 1.234,56 and $1,234.56; missing values never crash a page."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

_STYLES: dict[str, tuple[str, str, str, bool]] = {
    # currency: (symbol, thousands separator, decimal separator, space after symbol)
    "BRL": ("R$", ".", ",", True),
    "USD": ("$", ",", ".", False),
    "EUR": ("€", ".", ",", True),
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


def format_when(value: datetime | date | None, fmt: str = "%Y-%m-%d %H:%M", missing: str = "never") -> str:
    """A time or date, or `missing` for None and pandas' NaT (which is not None but has no strftime)."""
    if value is None or value != value:  # NaT compares unequal to itself
        return missing
    return value.strftime(fmt)
