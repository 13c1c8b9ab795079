"""The interface language of a Streamlit session: chosen on the first visit from the `lang` query parameter, the
user's stored setting, or the browser's language (in that order); changed with the sidebar selector, which stores
the choice for the user and keeps the page as it was (its widgets keep their keys, so filters stay)."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from finance import i18n
from finance.i18n import _
from finance.ui.context import services
from finance.ui.widgets import actor

SESSION_KEY = "language"
PARAM = "lang"
PREFERENCE = "language"


def _session_language() -> str | None:
    """The session's language, for finance.i18n (None outside a script run: the worker, the CLI)."""
    if get_script_run_ctx(suppress_warning=True) is None:
        return None
    return st.session_state.get(SESSION_KEY)


def browser_language() -> str | None:
    """The browser's language: navigator.language, else the Accept-Language header."""
    return i18n.negotiate(st.context.locale) or i18n.negotiate(st.context.headers.get("Accept-Language"))


def _stored() -> str | None:
    try:
        return services().preferences.get(actor(), PREFERENCE)
    except Exception:  # a store that cannot be read: the pages say so; the language falls back to the browser's
        return None


def init() -> str:
    """Settle the session's language (once per session) and make finance.i18n use it; the language."""
    i18n.set_source(_session_language)
    language = st.session_state.get(SESSION_KEY)
    if language not in i18n.LANGUAGES:
        language = (i18n.negotiate(st.query_params.get(PARAM)) or i18n.negotiate(_stored())
                    or browser_language() or i18n.DEFAULT)
        st.session_state[SESSION_KEY] = language
    st.session_state.setdefault("language_choice", language)
    i18n.set_default(language)  # the worker's messages (sync runs, alerts) follow the person using the app
    return language


def _chosen() -> None:
    """The selector's callback: switch at once, remember the choice for the user and in the address."""
    language = st.session_state["language_choice"]
    st.session_state[SESSION_KEY] = language
    st.query_params[PARAM] = language
    try:
        services().preferences.set(actor(), PREFERENCE, language)
    except Exception:  # the session still switches; the choice is not kept for the next visit
        st.session_state["language_unsaved"] = True


def selector() -> None:
    """The language selector in the sidebar."""
    st.sidebar.selectbox(_("Language"), list(i18n.LANGUAGES), format_func=i18n.LANGUAGES.__getitem__,
                         key="language_choice", on_change=_chosen)
    if st.session_state.pop("language_unsaved", False):
        st.sidebar.caption(_("The language could not be saved for your next visit."))
