"""Import files: a bank's CSV or OFX export into an account (a synced one, for history before the provider's
window, or a manual one for a bank no aggregator reaches). CSV columns are mapped once per account and remembered;
every row is previewed with what becomes of it (new, already synced, imported before, or a possible duplicate the
user decides on) before anything is written; a whole import can be undone. Bank text is shown as text only."""

import streamlit as st

from finance.errors import BadFile, EditError
from finance.formatting import escape_markdown, format_money
from finance.imports.csv_reader import DELIMITERS, ColumnMapping, with_overrides
from finance.imports.text import DATE_FORMATS, ENCODINGS, MAX_FILE_BYTES
from finance.model import AccountType
from finance.ui.context import services
from finance.ui.widgets import actor, flash, show_flash

PAGE = "imports"
DELIMITER_NAMES = {";": "; (semicolon)", ",": ", (comma)", "\t": "Tab", "|": "| (pipe)"}
MAX_DECISIONS_SHOWN = 50

st.title("Import files")
st.caption("Bring in history from before your bank connection's window, or from a bank no aggregator reaches. "
           "Rows already synced are left out (the bank connection's row wins); the import can be undone as a whole.")
svc = services()
show_flash(PAGE)


def run(action, *args, **kwargs) -> None:
    """A button callback: one change, reported on the next run; a refusal says why (as text, not Markdown)."""
    try:
        flash(PAGE, "success", escape_markdown(action(*args, actor=actor(), **kwargs)))
    except (BadFile, EditError) as exc:
        flash(PAGE, "error", escape_markdown(str(exc)))


def create_account() -> None:
    state = st.session_state
    run(svc.imports.create_account, state["imp_new_name"], state["imp_new_currency"], state["imp_new_type"],
        state["imp_new_balance"])


def commit(preview, decisions) -> None:
    run(svc.imports.commit, preview, decisions)
    if st.session_state.get(f"{PAGE}_flash", ("",))[0] == "success":
        st.session_state["imp_upload_round"] = st.session_state.get("imp_upload_round", 0) + 1


with (st.expander("New manual account (for a bank no aggregator reaches)"),
      st.form("imp_new_account", border=False)):
    st.text_input("Name", key="imp_new_name", max_chars=80, placeholder="e.g. Banco Local checking")
    columns = st.columns(3)
    columns[0].text_input("Currency", key="imp_new_currency", value="BRL", max_chars=3)
    columns[1].selectbox("Type", [t.value for t in AccountType], key="imp_new_type")
    columns[2].text_input("Balance today (optional)", key="imp_new_balance",
                          help="Anchors the balance history the imported rows are counted back from.")
    st.form_submit_button("Create account", on_click=create_account)

def column_mapping(account_id: str, file_id: str, data: bytes) -> ColumnMapping:
    """The CSV's sample rows and the mapping widgets, filled with the saved mapping or a guess."""
    sniffed = svc.imports.sniff(data)
    proposed, saved = svc.imports.mapping_for(account_id, sniffed)
    st.subheader("Columns")
    st.caption(("The mapping saved for this account was applied: check it." if saved else
                "Tell which column is which (a guess is filled in). It is saved for this account's next import.")
               + (f" The header row is line {sniffed.header_line}; the lines above it are skipped."
                  if sniffed.header_line > 1 else ""))
    st.dataframe([dict(zip(sniffed.headers, row, strict=False)) for row in sniffed.samples], hide_index=True)
    choices = ["", *sniffed.headers]
    key = f"imp_map_{account_id}_{file_id}"

    def pick(label: str, field: str, column) -> str:
        value = getattr(proposed, field) or ""
        return column.selectbox(label, choices, index=choices.index(value) if value in choices else 0,
                                key=f"{key}_{field}")

    cols = st.columns(4)
    picked = {"date": pick("Date", "date", cols[0]), "description": pick("Description", "description", cols[1]),
              "amount": pick("Amount (signed)", "amount", cols[2]), "id": pick("Bank's id (optional)", "id", cols[3])}
    cols = st.columns(4)
    picked |= {"debit": pick("…or Debit", "debit", cols[0]), "credit": pick("…and Credit", "credit", cols[1]),
               "balance": pick("Balance (optional)", "balance", cols[2])}
    picked["date_format"] = cols[3].selectbox("Date format", DATE_FORMATS, key=f"{key}_fmt",
                                              index=DATE_FORMATS.index(proposed.date_format))
    cols = st.columns(4)
    picked["decimal"] = cols[0].selectbox("Decimal separator", [",", "."], key=f"{key}_dec",
                                          index=[",", "."].index(proposed.decimal))
    picked["delimiter"] = cols[1].selectbox("Delimiter", DELIMITERS, format_func=DELIMITER_NAMES.get,
                                            key=f"{key}_delim", index=DELIMITERS.index(proposed.delimiter))
    picked["encoding"] = cols[2].selectbox("Encoding", ENCODINGS, key=f"{key}_enc",
                                           index=ENCODINGS.index(proposed.encoding))
    picked["negate"] = cols[3].checkbox("Spending is positive in this file", value=proposed.negate,
                                        key=f"{key}_neg")
    return with_overrides(ColumnMapping(), **picked)


def decide(preview, table, file_id: str, currency: str) -> dict[str, str]:
    """Keep or skip for each possible duplicate (none is preselected), or for all of them at once."""
    ambiguous = preview.ambiguous()
    if not ambiguous:
        return {}
    st.subheader("Possible duplicates")
    st.caption("Each of these has the same amount and nearly the same date as a stored transaction, but another "
               "description. Keep it if it is a different transaction; skip it if it is the same one.")
    bulk = st.radio("For all of them", ["Decide one by one", "Keep all", "Skip all"], horizontal=True,
                    key=f"imp_bulk_{file_id}")
    if bulk != "Decide one by one":
        return dict.fromkeys(ambiguous, "keep" if bulk == "Keep all" else "skip")
    if len(ambiguous) > MAX_DECISIONS_SHOWN:
        st.warning(f"{len(ambiguous)} rows need a decision; choose “Keep all” or “Skip all”, or import a shorter "
                   "period.")
    rows = table.set_index("id")
    decisions = {}
    for row_id in ambiguous[:MAX_DECISIONS_SHOWN]:
        row = rows.loc[row_id]
        st.text(f"Line {row['line']}: {row['date']} · {row['description']} · "
                f"{format_money(row['amount'], currency)}\n   stored: {row['matches']}")
        choice = st.radio("Keep or skip", ["keep", "skip"], index=None, horizontal=True, key=f"imp_decide_{row_id}",
                          label_visibility="collapsed")
        if choice:
            decisions[row_id] = choice
    return decisions


def import_file(accounts) -> None:
    """Account, file, mapping, preview, decisions, import: returns early where the user has something to do."""
    labels = dict(zip(accounts["id"], accounts["label"], strict=True))
    account_id = st.selectbox("Into account", list(labels), format_func=labels.get, key="imp_account")
    currency = accounts.set_index("id").loc[account_id, "currency"]
    round_ = st.session_state.get("imp_upload_round", 0)
    upload = st.file_uploader("Bank export (CSV or OFX)", type=["csv", "txt", "ofx", "qfx"],
                              key=f"imp_file_{round_}", max_upload_size=MAX_FILE_BYTES // 1_048_576)
    if upload is None:
        return
    if upload.size > MAX_FILE_BYTES:
        st.error(f"The file is larger than {MAX_FILE_BYTES // 1_048_576} MB. Export a shorter period.")
        return
    data = upload.getvalue()
    try:
        mapping = (column_mapping(account_id, upload.file_id, data)
                   if svc.imports.kind(upload.name, data) == "csv" else None)
        preview = svc.imports.preview(account_id, upload.name, data, mapping)
    except (BadFile, EditError) as exc:
        st.error(escape_markdown(str(exc)), icon="⚠️")
        st.caption("Nothing was stored. Fix the mapping above, or the file, and try again.")
        return

    st.subheader("Preview")
    counts = preview.counts()
    cols = st.columns(4)
    cols[0].metric("New", counts["new"])
    cols[1].metric("Already synced", counts["duplicate"])
    cols[2].metric("Imported before", counts["already imported"])
    cols[3].metric("Possible duplicates", counts["ambiguous"])
    table = preview.table()
    st.dataframe(table.drop(columns=["id"]), hide_index=True,
                 column_config={"amount": st.column_config.NumberColumn(f"amount ({currency})", format="%.2f")})
    decisions = decide(preview, table, upload.file_id, currency)
    to_add = counts["new"] + sum(1 for d in decisions.values() if d == "keep")
    ready = len(decisions) == len(preview.ambiguous())
    st.button(f"Import {to_add} row(s)", type="primary", disabled=not ready, on_click=commit,
              args=(preview, decisions), key="imp_commit")
    if not ready:
        st.caption("Decide every possible duplicate first.")


def overlaps() -> None:
    """Imported rows a later sync may repeat under another description: remove the imported row, or keep both."""
    found = svc.imports.overlaps()
    if found.empty:
        return
    st.subheader("Imported rows a sync may repeat")
    st.caption("A sync brought these after they were imported, with the same amount and nearly the same date but "
               "another description. Remove the imported row if it is the same transaction; keep both if not.")
    for row in found.head(MAX_DECISIONS_SHOWN).itertuples():
        st.text(f"{row.booked_date} · {row.description} · {format_money(row.amount, row.currency)}\n"
                f"   synced: {row.synced_date} · {row.synced_description}")
        left, right, _ = st.columns([1, 1, 4])
        left.button("Remove the imported row", key=f"imp_remove_{row.id}_{row.synced_id}", on_click=run,
                    args=(svc.imports.remove_imported, row.id))
        right.button("Keep both", key=f"imp_keep_{row.id}_{row.synced_id}", on_click=run,
                     args=(svc.imports.keep_both, row.id, row.synced_id))


def past_imports() -> None:
    """Every import with its counts; undo one as a whole."""
    st.subheader("Past imports")
    history = svc.imports.history()
    if history.empty:
        st.caption("No imports yet.")
        return
    st.dataframe(history.drop(columns=["id", "account_id"]), hide_index=True)
    live = history[history["undone_at"].isna()]
    if not live.empty:
        names = {r.id: f"{r.imported_at:%Y-%m-%d %H:%M} · {r.file_name} → {r.account} ({r.added} rows)"
                 for r in live.itertuples()}
        undo_id = st.selectbox("Import to undo", list(names), format_func=names.get, key="imp_undo_pick")
        st.button("Undo this import", on_click=run, args=(svc.imports.undo, undo_id), key="imp_undo")


accounts = svc.imports.accounts()
if accounts.empty:
    st.info("There is no account yet: connect a bank on **Connections**, or create a manual account above.")
else:
    import_file(accounts)
overlaps()
past_imports()
