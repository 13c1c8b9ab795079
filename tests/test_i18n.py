"""The interface language: catalogs complete and compiled from the source (Babel extracts every message), dates and
numbers in pt-BR, the language chosen from the browser, kept per user and switched without losing the page's filters,
and every page rendered in pt-BR without an English interface string on it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from streamlit.testing.v1 import AppTest

from finance import categories, connect_flow, i18n
from finance.formatting import format_money
from finance.i18n import N_, _, ngettext, using
from finance.store import schema_doc
from tests.conftest import OFFLINE_UNSET, ok

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGES = ["overview", "transactions", "money", "recurring", "budgets", "cash_flow", "forecast", "investments", "loans",
         "card_bills", "import_files", "connections", "sync_status", "explore", "alerts",
         "members", "audit"]
SAME_IN_PORTUGUESE = {
    # Names, codes and units a Brazilian reads as they are in English.
    "HTTP 500", "HTTP 503", "{count} h", "{count} min", "Sandbox", "(sandbox)", "{name} (sandbox)", "manual", "E-mail",
}
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def extracted() -> dict[Path, dict[str, tuple[str, ...]]]:
    """Every message id in the source, by the catalog it belongs to, as `make messages` extracts them: the shared
    one with babel.cfg, each aggregator's from its own folder (msgid → its plural forms)."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    sources = {i18n.LOCALE_DIR: (ROOT, method_map, options_map)}
    for folder in i18n.CATALOG_DIRS[1:]:
        sources[folder] = (folder.parent, [("**.py", "python")], {})
    found: dict[Path, dict[str, tuple[str, ...]]] = {}
    for catalog_dir, (source, methods, options) in sources.items():
        messages = found.setdefault(catalog_dir, {})
        for _file, _line, message, _comments, _context in extract_from_dir(str(source), methods, options):
            forms = message if isinstance(message, tuple) else (message,)
            messages[forms[0]] = forms
    return found


def catalog(language: str, catalog_dir: Path = i18n.LOCALE_DIR) -> dict[str, tuple[str, ...]]:
    """A language's catalog: msgid → its translated forms."""
    with (catalog_dir / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        messages = read_po(po, locale=language)
    return {(m.id[0] if isinstance(m.id, tuple) else m.id): (m.string if isinstance(m.string, tuple) else (m.string,))
            for m in messages if m.id}


@pytest.fixture(scope="module")
def messages() -> dict[Path, dict[str, tuple[str, ...]]]:
    found = extracted()
    assert len(found[i18n.LOCALE_DIR]) > 500, "the extraction found too little: is babel.cfg reading the source?"
    assert {p.parent.name for p in found} >= {"pluggy", "plaid"}, "each aggregator keeps its own catalog"
    return found


def test_the_catalogs_compile_and_the_app_reads_them(tmp_path: Path) -> None:
    copy = tmp_path / "locale"
    shutil.copytree(i18n.LOCALE_DIR, copy, ignore=shutil.ignore_patterns("*.mo"))
    written = i18n.compile_catalogs(copy)
    assert {p.parent.parent.name for p in written} == {"en", "pt_BR"}
    assert i18n.compile_catalogs(copy) == []  # up to date: nothing rewritten
    i18n.compile_catalogs()
    with using("pt-BR"):
        assert _("Net worth") == "Patrimônio líquido"
        assert _("Transactions") == "Lançamentos"
        assert "Reconecte" in _("Your bank needs you to log in again. Reconnect to restore access.")  # a provider's


def test_every_message_in_the_code_is_in_both_catalogs(messages: dict[Path, dict[str, tuple[str, ...]]]) -> None:
    for catalog_dir, found in messages.items():
        for language in i18n.LANGUAGES:
            missing = sorted(set(found) - set(catalog(language, catalog_dir)))
            assert not missing, f"{catalog_dir} {language}: run `make messages` and translate: {missing[:10]}"


@pytest.mark.parametrize("catalog_dir", i18n.CATALOG_DIRS, ids=lambda d: d.parent.name)
def test_every_portuguese_entry_is_translated_with_the_same_placeholders(
        messages: dict[Path, dict[str, tuple[str, ...]]], catalog_dir: Path) -> None:
    portuguese = catalog("pt_BR", catalog_dir)
    for msgid, forms in messages[catalog_dir].items():
        translated = portuguese[msgid]
        assert all(t.strip() for t in translated), f"empty pt-BR translation of {msgid!r}"
        if msgid not in SAME_IN_PORTUGUESE:
            assert translated[0] != msgid, f"pt-BR left in English: {msgid!r}"
        wanted = {name for form in forms for name in PLACEHOLDER.findall(form)}
        for text in translated:
            assert set(PLACEHOLDER.findall(text)) <= wanted, (msgid, text)
            if len(forms) == 1:
                assert set(PLACEHOLDER.findall(text)) == wanted, (msgid, text)


def test_the_connect_widget_words_are_all_translated() -> None:
    """widget.js looks its words up by their English text in the `texts` Python sends."""
    script = (ROOT / "finance" / "ui" / "connect_widget" / "widget.js").read_text(encoding="utf-8")
    used = set(re.findall(r'\bt\(\s*"((?:[^"\\]|\\.)*)"', script.replace('"\n      + "', "")))
    known = {text.message for text in connect_flow.WIDGET_TEXTS}
    assert used and used <= known, sorted(used - known)
    flow = connect_flow.start("pluggy", "Pluggy", None, hint=N_(
        "Sandbox: pick Pluggy Bank, user user-ok, password password-ok. user-ok-mfa asks for a code: 123456. Pluggy "
        "Bank (conexão direta) is being retired in favour of Pluggy Bank Open Finance."))
    with using("pt_BR"):
        data = connect_flow.widget_data(flow)
    assert data["texts"]["Pick your bank"] == "Escolha o seu banco"
    assert data["hint"].startswith("Sandbox: escolha Pluggy Bank")


def test_dates_months_and_numbers_follow_the_interface_language() -> None:
    day = date(2026, 3, 3)
    with using("pt_BR"):
        assert i18n.format_day(day) == "3 de março de 2026"
        assert i18n.format_month(day) == "mar. 2026"
        assert i18n.format_long_month(day) == "março de 2026"
        assert i18n.month_names()[2] == "março" and i18n.weekday_names()[0] == "segunda-feira"
        assert i18n.format_number(1234567) == "1.234.567" and i18n.format_number(0.5, 2) == "0,50"
        assert i18n.number_separators() == ",."
        assert i18n.format_timestamp(datetime(2026, 3, 3, 14, 5)) == "3 de mar. de 2026 14:05"
        assert i18n.format_timestamp(None) == "nunca"
    with using("en"):
        assert i18n.format_day(day) == "March 3, 2026" and i18n.format_month(day) == "Mar 2026"
        assert i18n.format_number(1234567) == "1,234,567" and i18n.number_separators() == ".,"


def test_amounts_keep_their_currency_whatever_the_language() -> None:
    for language in i18n.LANGUAGES:
        with using(language):
            assert format_money(1234.56, "BRL") == "R$ 1.234,56"
            assert format_money(1234.56, "USD") == "$1,234.56"


def test_plurals_and_lazy_text() -> None:
    with using("pt_BR"):
        assert ngettext("{count} day", "{count} days", 0).format(count=0) == "0 dia"  # 0 is singular in Portuguese
        assert ngettext("{count} day", "{count} days", 2).format(count=2) == "2 dias"
    label = N_("Savings")
    with using("pt_BR"):
        assert str(label) == f"{label}" == "Poupança" and label + "!" == "Poupança!"
    with using("en"):
        assert str(label) == "Savings" and label == "Savings" and {label: 1}[N_("Savings")] == 1


def test_the_browser_language_is_negotiated() -> None:
    assert i18n.negotiate("pt-BR") == "pt_BR"
    assert i18n.negotiate("pt-PT,pt;q=0.9") == "pt_BR"
    assert i18n.negotiate("de-DE,en-US;q=0.8") == "en"
    assert i18n.negotiate("fr-FR") is None and i18n.negotiate("") is None and i18n.negotiate("not a tag!") is None


def test_every_category_of_the_taxonomy_has_both_names() -> None:
    with using("pt_BR"):
        names = {c.id: c.label for c in categories.CATEGORIES.values()}
        assert categories.category_label("food.groceries") == "Alimentação › Supermercado"
    assert all(names[c.id] != c.name for c in categories.CATEGORIES.values())
    assert len(set(names.values())) == len(names)


# -- the app in pt-BR --------------------------------------------------------------------------------------------

@pytest.fixture
def store(demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the demo store as the app's data folder."""
    folder = tmp_path / "data"
    shutil.copytree(demo_store, folder)
    for name in OFFLINE_UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINANCE_DATA_DIR", str(folder))
    monkeypatch.setenv("FINANCE_SANDBOX_SETTLE_SECONDS", "0")
    yield folder


def browser(locale: str | None = "pt-BR") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    if locale:
        at.context = {"locale": locale}
    return at


def texts(at: AppTest) -> list[str]:
    """Every piece of text the page shows: titles, markdown, captions, alerts, labels, help, placeholders, options,
    metric values, table headers and the charts' titles, axes, legends and hover templates."""
    found: list[str] = []

    def walk(node: object) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            for field in ("body", "label", "help", "placeholder", "value", "title", "text"):
                value = getattr(proto, field, None)
                if isinstance(value, str) and value:
                    found.append(value)
            found.extend(str(option) for option in getattr(proto, "options", []) if isinstance(option, str))
            spec = getattr(proto, "spec", None) or getattr(proto, "figure", None)
            if isinstance(spec, str):
                found.append(spec)
        if getattr(node, "type", None) == "arrow_data_frame":
            found.extend(str(c) for c in node.value.columns)  # type: ignore[attr-defined]
        for child in getattr(node, "children", {}).values() if isinstance(getattr(node, "children", None), dict) \
                else []:
            walk(child)

    walk(at._tree)
    return found


def english_needles() -> tuple[set[str], list[str]]:
    """What would give away an untranslated string: whole short messages (compared with a whole text) and the
    literal stretches of longer ones (three words or more, searched inside every text)."""
    portuguese = {k: v for d in i18n.CATALOG_DIRS for k, v in catalog("pt_BR", d).items()}
    whole: set[str] = set()
    pieces: list[str] = []
    for msgid, forms in portuguese.items():
        if msgid in SAME_IN_PORTUGUESE or forms[0] == msgid:
            continue
        for piece in PLACEHOLDER.split(msgid)[::2]:
            piece = piece.strip(" .,:;()*`")
            if len(piece.split()) >= 3:
                pieces.append(piece)
        if not PLACEHOLDER.search(msgid):
            whole.add(msgid)
    return whole, pieces


@pytest.mark.parametrize("page", PAGES)
def test_every_page_reads_in_portuguese(store: Path, page: str) -> None:
    at = browser("pt-BR")
    at.run()
    if page != "overview":
        at.switch_page(f"pages/{page}.py")
        at.run()
    ok(at)
    shown = texts(at)
    assert len(shown) > 5
    if page == "explore":  # the schema reference is docs/schema.md, from the tables' own comments: English by design
        intro, sections = schema_doc.INTRO, schema_doc.sections()
        reference = {intro, *(s.markdown for s in sections), *(s.title for s in sections)}
        assert reference & set(shown), "the Schema tab shows the reference"
        shown = [t for t in shown if t not in reference]
    whole, pieces = english_needles()
    english = sorted({t for t in shown if t.strip() in whole} |
                     {p for p in pieces for t in shown if p in t})
    assert not english, f"English on {page} in pt-BR: {english[:10]}"


def test_the_browser_language_opens_the_app_in_portuguese(store: Path) -> None:
    at = browser("pt-BR")
    at.run()
    ok(at)
    assert at.title[0].value == "Visão geral"
    assert browser("en-US").run().title[0].value == "Overview"
    assert browser(None).run().title[0].value == "Overview"  # no language sent: English


def test_switching_is_immediate_keeps_the_filters_and_is_remembered(store: Path) -> None:
    at = browser("en-US")
    at.session_state["period_preset"] = "Last 30 days"  # the page's filter, as the user left it
    at.session_state["txn_text"] = "uber"  # a filter set on another page
    at.run()
    assert at.title[0].value == "Overview"
    # (AppTest draws app.py's own elements, the sidebar's selector among them, on the first run only.)
    at.sidebar.selectbox(key="language_choice").select("pt_BR").run()
    ok(at)
    assert at.title[0].value == "Visão geral"
    assert at.selectbox(key="period_preset").value == "Last 30 days"  # the page's filter is still there…
    assert "Últimos 30 dias" in at.selectbox(key="period_preset").options  # …in Portuguese
    assert at.session_state["txn_text"] == "uber"
    assert at.query_params["lang"] in ("pt_BR", ["pt_BR"])  # the address names it (a bookmark keeps it)
    again = browser("en-US")  # a new visit from an English browser: the stored choice wins
    again.run()
    assert again.title[0].value == "Visão geral"
    back = browser("pt-BR")
    back.query_params["lang"] = "en"  # a link that names the language wins over both
    back.run()
    assert back.title[0].value == "Overview"


def metric_rows(node: object, parent: object = None) -> Iterator[tuple[object, object]]:
    """(metric, the block it sits in) for every metric on the page."""
    if getattr(node, "type", None) == "metric":
        yield node, parent
    children = getattr(node, "children", None)
    for child in children.values() if isinstance(children, dict) else ():
        yield from metric_rows(child, node)


def test_every_amount_on_the_transactions_tiles_shows_in_full(store: Path) -> None:
    """The tiles sit in a horizontal container that wraps, each as wide as its figure (four tiles in columns cut
    "R$ 251.203,45" to "R$ 251.20…" at the default width); the figures are whole amounts."""
    amount = re.compile(r"^-?(R\$ \d{1,3}(\.\d{3})*,\d{2}|\$\d{1,3}(,\d{3})*\.\d{2})$")
    for locale in ("pt-BR", "en-US"):
        at = browser(locale)
        at.run()
        at.switch_page("pages/transactions.py")
        at.run()
        ok(at)
        tiles = [(m, block) for m, block in metric_rows(at._tree) if "$" in m.value]  # type: ignore[attr-defined]
        assert len(tiles) >= 3, [m.value for m in at.metric]
        for metric, block in tiles:
            assert amount.match(metric.value), metric.value  # type: ignore[attr-defined]
            flex = block.proto.flex_container  # type: ignore[attr-defined]
            assert flex.direction == flex.Direction.HORIZONTAL and flex.wrap, flex
