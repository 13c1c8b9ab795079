"""Exported cells a spreadsheet never runs as formulas (CSV injection, OWASP): bank text is hostile.

A text cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is what Excel, LibreOffice and Google
Sheets evaluate as a formula (`=HYPERLINK(...)`, `@SUM(...)`, `-2+3`); such cells get a leading apostrophe, which
spreadsheets show as text and never evaluate. Numbers, dates and the like are typed columns and stay untouched.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

FORMULA_START = r"^[=+\-@\t\r]"


def neutralise_table(table: pa.Table) -> pa.Table:
    """The table with every text cell made safe (vectorised: a million rows take a fraction of a second)."""
    for index, field in enumerate(table.schema):
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
                or pa.types.is_string_view(field.type)):
            continue
        column = table.column(index)
        risky = pc.match_substring_regex(column, FORMULA_START)
        safe = pc.if_else(risky, pc.binary_join_element_wise(pa.scalar("'", field.type), column,
                                                                  pa.scalar("", field.type)), column)
        table = table.set_column(index, field, safe)
    return table
