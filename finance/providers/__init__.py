"""One module per aggregator: an httpx client plus the mapping into finance.model."""
