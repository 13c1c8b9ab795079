"""Streamlit components and shared widgets. Pages import from here; the logic lives in finance.*."""
