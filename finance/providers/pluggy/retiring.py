"""Direct connectors Pluggy retires in favour of the institution's Open Finance connector.

Pluggy announces the end of a direct (credential) connector on the connector itself: a scheduled maintenance
incident in `health.incidents`, while the institution's Open Finance connector (`isOpenFinance: true`, the same
`institutionUrl`) is listed beside it; items left on the direct one are deleted about 30 days after it stops
(reference/pluggy.md §6.4). The exact wording is not documented, so the incident is taken as the announcement and
the twin as the way forward: the connection gets `successor_institution_id` (the Connections page says what to do).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from finance.errors import ProviderError
from finance.model import ConnectionState
from finance.providers.pluggy.client import PluggyClient

CATALOG_TTL = timedelta(hours=24)  # connectors change rarely; one listing a day is plenty


def announces_retirement(connector: dict[str, Any]) -> bool:
    """A direct connector whose health carries a scheduled maintenance incident (its end announced)."""
    if connector.get("isOpenFinance") is not False:
        return False
    health = connector.get("health") if isinstance(connector.get("health"), dict) else {}
    incidents = health.get("incidents") if isinstance(health.get("incidents"), list) else []
    return any(isinstance(i, dict) and i.get("kind") == "MAINTENANCE" and i.get("state") == "SCHEDULED"
               for i in incidents)


def _host(url: Any) -> str:
    host = (urlsplit(url).hostname or "") if isinstance(url, str) else ""
    return host.lower().removeprefix("www.")


def open_finance_twin(connector: dict[str, Any], catalog: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The institution's Open Finance connector: same institution site, `isOpenFinance`, the same sandbox-ness."""
    host = _host(connector.get("institutionUrl"))
    if not host:
        return None
    twins = [c for c in catalog if c.get("isOpenFinance") is True and c.get("id") != connector.get("id")
             and _host(c.get("institutionUrl")) == host
             and bool(c.get("isSandbox")) == bool(connector.get("isSandbox"))]
    return twins[0] if len(twins) == 1 else None


class Successors:
    """Finds the Open Finance connector that replaces a retiring one (the connector catalog read once a day)."""

    def __init__(self, client: PluggyClient, now: Callable[[], datetime]) -> None:
        self._client = client
        self._now = now
        self._catalog: list[dict[str, Any]] | None = None
        self._read_at: datetime | None = None
        self._lock = threading.Lock()

    def _connectors(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self._now()
            if self._catalog is None or self._read_at is None or now - self._read_at > CATALOG_TTL:
                self._catalog = self._client.connectors(sandbox=True, countries=None)
                self._read_at = now
            return self._catalog

    def apply(self, item: dict[str, Any], state: ConnectionState) -> ConnectionState:
        """`state` with the successor institution when the item's connector is being retired."""
        connector = item.get("connector") if isinstance(item.get("connector"), dict) else {}
        if not announces_retirement(connector):
            return state
        try:
            twin = open_finance_twin(connector, self._connectors())
        except ProviderError:
            return state  # the catalog is unreachable now: the next sync says it
        if twin is None:
            return state
        return replace(state, successor_institution_id=str(twin["id"]))
