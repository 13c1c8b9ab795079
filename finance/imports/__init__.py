"""File import for history before a provider's window, or for banks no aggregator reaches (pure functions).

- `text`: what every reader shares: the row type, the size limits, decoding bytes, amounts, dates and row ids.
- `csv_reader`: a bank's CSV read through the user's column mapping (sniffed and guessed first, saved per account).
- `ofx_reader`: OFX 1.x (SGML) and 2.x (XML) statements, through ofxtools.
- `matching`: which file rows a synced (or earlier imported) row already describes, and which are ambiguous.

Everything here raises `finance.errors.BadFile` naming the line (and column) of the first problem; nothing here
touches the store, so a file is read in full before anything is written.
"""
