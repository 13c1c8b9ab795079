"""Streamlit entry point: `streamlit run app.py` (see the README)."""

import streamlit as st

st.set_page_config(page_title="Open Finance dashboard", page_icon="💰", layout="wide")

navigation = st.navigation([
    st.Page("pages/overview.py", title="Overview", icon="📊", default=True),
    st.Page("pages/transactions.py", title="Transactions", icon="🧾"),
    st.Page("pages/connections.py", title="Connections", icon="🏦"),
    st.Page("pages/sync_status.py", title="Sync status", icon="🔄"),
    st.Page("pages/explore.py", title="Explore", icon="🔎"),
])
navigation.run()
