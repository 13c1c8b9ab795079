"""Amounts shown the way each currency's users write them (R$ 1.234,56; $1,234.56)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

_STYLES: dict[str, tuple[str, str, str, bool]] = {
    # currency: (symbol, thousands separator, decimal separator, space after symbol)
    "BRL": ("R$", ".", ",", True),
    "USD": ("$", ",", ".", False),
    "EUR": ("€", ".", ",", True),
}


def format_money(amount: Decimal | float | int | None, currency: str) -> str:
    """A signed amount with the currency's symbol and separators; unknown currencies show their code."""
    if amount is None:
        return "—"
    value = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    symbol, thousands, decimal_sep, space = _STYLES.get(currency, (currency, ",", ".", True))
    whole, cents = f"{abs(value):,.2f}".split(".")
    whole = whole.replace(",", thousands)
    sign = "-" if value < 0 else ""
    return f"{sign}{symbol}{' ' if space else ''}{whole}{decimal_sep}{cents}"
