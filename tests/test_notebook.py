"""Issue 16: docs/analysis.ipynb runs against a demo store's snapshot, so it never rots. A tiny runner executes its
code cells in order in one namespace (as a kernel would); each analysis is checked against the app's own reports."""

from __future__ import annotations

import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from finance import analytics
from finance.config import load_settings
from finance.services import open_services
from tests.conftest import OFFLINE_UNSET

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "analysis.ipynb"


def run_notebook(path: Path) -> dict[str, object]:
    """Execute the notebook's code cells in order; the namespace they leave."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    namespace: dict[str, object] = {"__name__": "__main__"}
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            assert not cell["outputs"], "commit the notebook without outputs"
            exec(compile("".join(cell["source"]), f"{path.name}[{index}]", "exec"), namespace)
    return namespace


def test_the_notebook_runs_its_three_analyses(demo_store, tmp_path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "data"
    shutil.copytree(demo_store, folder)
    for name in OFFLINE_UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINANCE_DATA_DIR", str(folder))
    services = open_services(load_settings())
    try:
        services.analytics.refresh()
        flows = services.reports.monthly_cashflow(date(2000, 1, 1), date(2100, 1, 1))
    finally:
        services.engine.dispose()

    ns = run_notebook(NOTEBOOK)

    spending, merchants, cash_flow = ns["spending"], ns["merchants"], ns["cash_flow"]
    assert ns["currency"] in {"BRL", "USD"}
    assert len(spending) > 0 and (spending["spending"] > 0).any()
    assert 0 < merchants["merchant"].nunique() <= 10
    assert len(cash_flow) == len(flows)
    page = {(str(r.month)[:10], r.currency): (Decimal(str(r.income)), Decimal(str(r.spending)))
            for r in flows.itertuples()}
    notebook = {(str(r.month)[:10], r.currency): (Decimal(str(r.income)).quantize(Decimal("0.01")),
                                                  Decimal(str(r.spending)).quantize(Decimal("0.01")))
                for r in cash_flow.itertuples()}
    assert notebook == {k: (i.quantize(Decimal("0.01")), s.quantize(Decimal("0.01"))) for k, (i, s) in page.items()}
    with pytest.raises(Exception, match="closed"):
        ns["con"].execute("SELECT 1")  # the notebook closes its connection to the snapshot
    assert analytics.snapshot_path(folder).is_file()
