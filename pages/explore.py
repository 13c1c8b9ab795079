"""Explore: the documented schema, a read-only SQL console, saved queries and CSV/Parquet downloads."""

import streamlit as st

from finance.errors import ConsoleError
from finance.formatting import escape_markdown
from finance.i18n import _, format_number, ngettext
from finance.ui.auth import audited, record
from finance.ui.context import services

st.title(_("Explore"))
svc = services()
console = svc.console

st.caption(_("Read-only SQL (DuckDB dialect) over a snapshot of the store taken when you press Run. Each query runs "
             "for at most {seconds} s with {memory} of memory and returns at most {rows} rows ({size}); files, "
             "extensions and settings are off-limits and provider tokens are never available. Times are UTC; amounts "
             "are negative when money leaves you.").format(
    rows=format_number(console.MAX_ROWS), seconds=f"{console.TIMEOUT_SECONDS:g}", memory=console.MEMORY,
    size=console.MAX_RESULT_SIZE))

try:
    saved = console.saved()
except ConsoleError as exc:
    st.warning(escape_markdown(exc.message))
    saved = []
choices = {q.name: q for q in (*saved, *console.EXAMPLES)}


def load_choice() -> None:
    name = st.session_state.get("explore_saved")
    if name in choices:
        st.session_state["explore_sql"] = choices[name].sql
        st.session_state.pop("explore_result", None)


def save_current() -> None:
    try:
        query = console.save(st.session_state.get("explore_save_name", ""), st.session_state["explore_sql"])
        st.session_state["explore_flash"] = ("success", _("Saved “{name}”.").format(name=query.name))
    except ConsoleError as exc:
        st.session_state["explore_flash"] = ("error", exc.message)


def delete_chosen() -> None:
    name = st.session_state.get("explore_saved")
    if name and console.delete(name):
        st.session_state["explore_saved"] = ""
        st.session_state["explore_flash"] = ("success", _("Deleted “{name}”.").format(name=name))


if "explore_sql" not in st.session_state:
    st.session_state["explore_sql"] = console.EXAMPLES[0].sql

console_tab, schema_tab = st.tabs([_("SQL console"), _("Schema")])

with console_tab:
    st.selectbox(_("Saved queries"), ["", *choices], key="explore_saved", on_change=load_choice,
                 format_func=lambda n: _(n) if n in choices and choices[n].example else
                 n or _("Choose a saved query or an example…"))
    sql = st.text_area("SQL", key="explore_sql", height=180)
    run, save_name, save, delete = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
    if run.button(_("Run"), type="primary", key="explore_run", icon="▶️"):
        record("console_query", "", {"sql": sql[:4000]})
        try:
            st.session_state["explore_result"] = (sql, console.run(sql))
        except ConsoleError as exc:
            st.session_state["explore_result"] = (sql, exc)
    save_name.text_input(_("Name"), key="explore_save_name", placeholder=_("Name to save this query under"))
    save.button(_("Save"), key="explore_save", on_click=save_current)
    chosen = st.session_state.get("explore_saved")
    delete.button(_("Delete saved"), key="explore_delete", on_click=delete_chosen,
                  disabled=not (chosen in choices and not choices[chosen].example))
    kind, text = st.session_state.pop("explore_flash", (None, None))
    if kind == "success":
        st.success(escape_markdown(text), icon="✅")
    elif kind == "error":
        st.error(escape_markdown(text), icon="⚠️")

    ran_sql, outcome = st.session_state.get("explore_result", (None, None))
    if isinstance(outcome, ConsoleError):
        st.error(escape_markdown(outcome.message), icon="⚠️")
    elif outcome is not None:
        if ran_sql != sql:
            st.caption(_("The query changed since these results; press Run to refresh them."))
        rows_text = ngettext("{count} row in {ms} ms.", "{count} rows in {ms} ms.", outcome.rows).format(
            count=format_number(outcome.rows), ms=format_number(outcome.elapsed_ms))
        more = " " + _("The result was cut at the console's limit of {rows} rows or {size}: only these are shown "
                       "and downloaded.").format(rows=format_number(console.MAX_ROWS), size=console.MAX_RESULT_SIZE) \
            if outcome.truncated else ""
        st.caption(rows_text + more)
        st.dataframe(outcome.table, hide_index=True, width="stretch")
        table = outcome.table
        downloads = st.container(horizontal=True)
        audit_detail = {"sql": (ran_sql or "")[:4000]}
        downloads.download_button(_("Download CSV"), file_name="query.csv", mime="text/csv", key="explore_csv",
                                  data=audited("export", "query", {**audit_detail, "format": "csv"},
                                               lambda: console.csv(table)), on_click="ignore", icon="⬇️")
        downloads.download_button(_("Download Parquet"), file_name="query.parquet",
                                  mime="application/vnd.apache.parquet", key="explore_parquet",
                                  data=audited("export", "query", {**audit_detail, "format": "parquet"},
                                               lambda: console.parquet(table)), on_click="ignore", icon="⬇️")

with schema_tab:  # the same text as docs/schema.md, written from the tables' own comments: a reference kept in English
    st.caption(_("The schema reference (docs/schema.md), written from the tables' and columns' own comments."))
    intro, sections = console.schema()
    st.markdown(intro)
    for section in sections:
        with st.expander(section.title, expanded=section.title.startswith("`transactions`")):
            st.markdown(section.markdown)
