"""The normalized store: SQLAlchemy Core schema (DuckDB by default), bulk apply of sync results, queries."""
