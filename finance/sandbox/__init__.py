"""What every offline emulator shares: the clock, fault injection, the ledger core and serving over HTTP.

Each provider's emulator lives in its own kit (finance/providers/<name>/sandbox/) and plugs into the real client as
an httpx transport.
"""
