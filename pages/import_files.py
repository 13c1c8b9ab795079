"""Import files: a bank's CSV or OFX export into an account (a synced one, for history before the provider's
window, or a manual one for a bank no aggregator reaches). CSV columns are mapped once per account and remembered;
every row is previewed with what becomes of it (new, already synced, imported before, or a possible duplicate the
user decides on) before anything is written; a whole import can be undone. Bank text is shown as text only."""

import streamlit as st

from finance.errors import BadFile, EditError
from finance.formatting import escape_markdown, format_money
from finance.households import Permission
from finance.i18n import N_, _, format_timestamp, ngettext
from finance.imports.csv_reader import DELIMITERS, ColumnMapping, with_overrides
from finance.imports.text import DATE_FORMATS, ENCODINGS, MAX_FILE_BYTES
from finance.model import AccountType
from finance.money import account_type_label
from finance.ui.auth import can, editor
from finance.ui.context import services
from finance.ui.widgets import flash, show_flash

PAGE = "imports"
DELIMITER_NAMES = {";": N_("; (semicolon)"), ",": N_(", (comma)"), "\t": N_("Tab"), "|": N_("| (pipe)")}
OUTCOMES = {"new": N_("new"), "duplicate": N_("already synced"), "already imported": N_("imported before"),
            "ambiguous": N_("possible duplicate")}
"""finance.imports.matching.Verdict, as the preview shows it."""
DECISIONS = {"keep": N_("keep"), "skip": N_("skip")}
HISTORY_COLUMNS = {"imported_at": N_("Imported"), "file_name": N_("File"), "kind": N_("Kind"), "account": N_("Account"),
                   "rows_in_file": N_("Rows in file"), "added": N_("Added"), "duplicates": N_("Already synced"),
                   "already_imported": N_("Imported before"), "ambiguous_kept": N_("Duplicates kept"),
                   "ambiguous_skipped": N_("Duplicates skipped"), "first_date": N_("From"), "last_date": N_("To"),
                   "undone_at": N_("Undone"), "actor": N_("By"), "rows_now": N_("Rows now")}
MAX_DECISIONS_SHOWN = 50

st.title(_("Import files"))
if not can(Permission.EDIT):
    st.info(_("Importing files changes the household's data: it is for its owners and members."), icon="🔒")
    st.stop()
st.caption(_("Bring in history from before your bank connection's window, or from a bank no aggregator reaches. "
             "Rows already synced are left out (the bank connection's row wins); the import can be undone as a "
             "whole."))
svc = services()
show_flash(PAGE)


def run(action, *args, **kwargs) -> None:
    """A button callback: one change, reported on the next run; a refusal says why."""
    try:
        flash(PAGE, "success", action(*args, actor=editor(), **kwargs))
    except (BadFile, EditError) as exc:
        flash(PAGE, "error", str(exc))


def create_account() -> None:
    state = st.session_state
    run(svc.imports.create_account, state["imp_new_name"], state["imp_new_currency"], state["imp_new_type"],
        state["imp_new_balance"])


def commit(preview, decisions) -> None:
    run(svc.imports.commit, preview, decisions)
    if st.session_state.get(f"{PAGE}_flash", ("",))[0] == "success":
        st.session_state["imp_upload_round"] = st.session_state.get("imp_upload_round", 0) + 1


with (st.expander(_("New manual account (for a bank no aggregator reaches)")),
      st.form("imp_new_account", border=False)):
    st.text_input(_("Name"), key="imp_new_name", max_chars=80, placeholder=_("e.g. Banco Local checking"))
    columns = st.columns(3)
    columns[0].text_input(_("Currency"), key="imp_new_currency", value="BRL", max_chars=3)
    columns[1].selectbox(_("Type"), [t.value for t in AccountType], format_func=account_type_label,
                         key="imp_new_type")
    columns[2].text_input(_("Balance today (optional)"), key="imp_new_balance",
                          help=_("Anchors the balance history the imported rows are counted back from."))
    st.form_submit_button(_("Create account"), on_click=create_account)

def column_mapping(account_id: str, file_id: str, data: bytes) -> ColumnMapping:
    """The CSV's sample rows and the mapping widgets, filled with the saved mapping or a guess."""
    sniffed = svc.imports.sniff(data)
    proposed, saved = svc.imports.mapping_for(account_id, sniffed)
    st.subheader(_("Columns"))
    st.caption((_("The mapping saved for this account was applied: check it.") if saved else
                _("Tell which column is which (a guess is filled in). It is saved for this account's next import."))
               + (" " + _("The header row is line {line}; the lines above it are skipped.").format(
                   line=sniffed.header_line) if sniffed.header_line > 1 else ""))
    st.dataframe([dict(zip(sniffed.headers, row, strict=False)) for row in sniffed.samples], hide_index=True)
    choices = ["", *sniffed.headers]
    key = f"imp_map_{account_id}_{file_id}"

    def pick(label: str, field: str, column) -> str:
        value = getattr(proposed, field) or ""
        return column.selectbox(label, choices, index=choices.index(value) if value in choices else 0,
                                key=f"{key}_{field}")

    cols = st.columns(4)
    picked = {"date": pick(_("Date"), "date", cols[0]),
              "description": pick(_("Description"), "description", cols[1]),
              "amount": pick(_("Amount (signed)"), "amount", cols[2]),
              "id": pick(_("Bank's id (optional)"), "id", cols[3])}
    cols = st.columns(4)
    picked |= {"debit": pick(_("…or Debit"), "debit", cols[0]), "credit": pick(_("…and Credit"), "credit", cols[1]),
               "balance": pick(_("Balance (optional)"), "balance", cols[2])}
    picked["date_format"] = cols[3].selectbox(_("Date format"), DATE_FORMATS, key=f"{key}_fmt",
                                              index=DATE_FORMATS.index(proposed.date_format))
    cols = st.columns(4)
    picked["decimal"] = cols[0].selectbox(_("Decimal separator"), [",", "."], key=f"{key}_dec",
                                          index=[",", "."].index(proposed.decimal))
    picked["delimiter"] = cols[1].selectbox(_("Delimiter"), DELIMITERS, format_func=lambda d: str(DELIMITER_NAMES[d]),
                                            key=f"{key}_delim", index=DELIMITERS.index(proposed.delimiter))
    picked["encoding"] = cols[2].selectbox(_("Encoding"), ENCODINGS, key=f"{key}_enc",
                                           index=ENCODINGS.index(proposed.encoding))
    picked["negate"] = cols[3].checkbox(_("Spending is positive in this file"), value=proposed.negate,
                                        key=f"{key}_neg")
    return with_overrides(ColumnMapping(), **picked)


def decide(preview, table, file_id: str, currency: str) -> dict[str, str]:
    """Keep or skip for each possible duplicate (none is preselected), or for all of them at once."""
    ambiguous = preview.ambiguous()
    if not ambiguous:
        return {}
    st.subheader(_("Possible duplicates"))
    st.caption(_("Each of these has the same amount and nearly the same date as a stored transaction, but another "
                 "description. Keep it if it is a different transaction; skip it if it is the same one."))
    bulk_labels = {"one": N_("Decide one by one"), "keep": N_("Keep all"), "skip": N_("Skip all")}
    bulk = st.radio(_("For all of them"), list(bulk_labels), format_func=lambda b: str(bulk_labels[b]),
                    horizontal=True, key=f"imp_bulk_{file_id}")
    if bulk != "one":
        return dict.fromkeys(ambiguous, bulk)
    if len(ambiguous) > MAX_DECISIONS_SHOWN:
        st.warning(_("{count} rows need a decision; choose “Keep all” or “Skip all”, or import a shorter "
                     "period.").format(count=len(ambiguous)))
    rows = table.set_index("id")
    decisions = {}
    for row_id in ambiguous[:MAX_DECISIONS_SHOWN]:
        row = rows.loc[row_id]
        st.text(_("Line {line}: {date} · {description} · {amount}\n   stored: {matches}").format(
            line=row["line"], date=row["date"], description=row["description"],
            amount=format_money(row["amount"], currency), matches=row["matches"]))
        choice = st.radio(_("Keep or skip"), ["keep", "skip"], format_func=lambda d: str(DECISIONS[d]), index=None,
                          horizontal=True, key=f"imp_decide_{row_id}", label_visibility="collapsed")
        if choice:
            decisions[row_id] = choice
    return decisions


def import_file(accounts) -> None:
    """Account, file, mapping, preview, decisions, import: returns early where the user has something to do."""
    labels = dict(zip(accounts["id"], accounts["label"], strict=True))
    account_id = st.selectbox(_("Into account"), list(labels), format_func=labels.get, key="imp_account")
    currency = accounts.set_index("id").loc[account_id, "currency"]
    round_ = st.session_state.get("imp_upload_round", 0)
    upload = st.file_uploader(_("Bank export (CSV or OFX)"), type=["csv", "txt", "ofx", "qfx"],
                              key=f"imp_file_{round_}", max_upload_size=MAX_FILE_BYTES // 1_048_576)
    if upload is None:
        return
    if upload.size > MAX_FILE_BYTES:
        st.error(_("The file is larger than {size} MB. Export a shorter period.").format(
            size=MAX_FILE_BYTES // 1_048_576))
        return
    data = upload.getvalue()
    try:
        mapping = (column_mapping(account_id, upload.file_id, data)
                   if svc.imports.kind(upload.name, data) == "csv" else None)
        preview = svc.imports.preview(account_id, upload.name, data, mapping)
    except (BadFile, EditError) as exc:
        st.error(escape_markdown(str(exc)), icon="⚠️")
        st.caption(_("Nothing was stored. Fix the mapping above, or the file, and try again."))
        return

    st.subheader(_("Preview"))
    counts = preview.counts()
    cols = st.columns(4)
    cols[0].metric(_("New"), counts["new"])
    cols[1].metric(_("Already synced"), counts["duplicate"])
    cols[2].metric(_("Imported before"), counts["already imported"])
    cols[3].metric(_("Possible duplicates"), counts["ambiguous"])
    table = preview.table()
    amount = _("Amount ({currency})").format(currency=currency)
    st.dataframe(table.drop(columns=["id"]).assign(outcome=[str(OUTCOMES.get(o, o)) for o in table["outcome"]])
                 .rename(columns={"line": _("Line"), "date": _("Date"), "description": _("Description"),
                                  "amount": amount, "outcome": _("Outcome"), "matches": _("Stored as")}),
                 hide_index=True, column_config={amount: st.column_config.NumberColumn(amount, format="%.2f")})
    decisions = decide(preview, table, upload.file_id, currency)
    to_add = counts["new"] + sum(1 for d in decisions.values() if d == "keep")
    ready = len(decisions) == len(preview.ambiguous())
    st.button(ngettext("Import {count} row", "Import {count} rows", to_add).format(count=to_add), type="primary",
              disabled=not ready, on_click=commit, args=(preview, decisions), key="imp_commit")
    if not ready:
        st.caption(_("Decide every possible duplicate first."))


def overlaps() -> None:
    """Imported rows a later sync may repeat under another description: remove the imported row, or keep both."""
    found = svc.imports.overlaps()
    if found.empty:
        return
    st.subheader(_("Imported rows a sync may repeat"))
    st.caption(_("A sync brought these after they were imported, with the same amount and nearly the same date but "
                 "another description. Remove the imported row if it is the same transaction; keep both if not."))
    for row in found.head(MAX_DECISIONS_SHOWN).itertuples():
        st.text(f"{row.booked_date} · {row.description} · {format_money(row.amount, row.currency)}\n   " +
                _("synced: {date} · {description}").format(date=row.synced_date,
                                                           description=row.synced_description))
        left, right, _rest = st.columns([1, 1, 4])
        left.button(_("Remove the imported row"), key=f"imp_remove_{row.id}_{row.synced_id}", on_click=run,
                    args=(svc.imports.remove_imported, row.id))
        right.button(_("Keep both"), key=f"imp_keep_{row.id}_{row.synced_id}", on_click=run,
                     args=(svc.imports.keep_both, row.id, row.synced_id))


def past_imports() -> None:
    """Every import with its counts; undo one as a whole."""
    st.subheader(_("Past imports"))
    history = svc.imports.history()
    if history.empty:
        st.caption(_("No imports yet."))
        return
    st.dataframe(history.drop(columns=["id", "account_id"]).rename(
        columns={k: str(v) for k, v in HISTORY_COLUMNS.items()}), hide_index=True)
    live = history[history["undone_at"].isna()]
    if not live.empty:
        names = {r.id: f"{format_timestamp(r.imported_at)} · {r.file_name} → {r.account} (" +
                 ngettext("{count} row", "{count} rows", r.added).format(count=r.added) + ")"
                 for r in live.itertuples()}
        undo_id = st.selectbox(_("Import to undo"), list(names), format_func=names.get, key="imp_undo_pick")
        st.button(_("Undo this import"), on_click=run, args=(svc.imports.undo, undo_id), key="imp_undo")


accounts = svc.imports.accounts()
if accounts.empty:
    st.info(_("There is no account yet: connect a bank on **Connections**, or create a manual account above."))
else:
    import_file(accounts)
overlaps()
past_imports()
