"""Open Finance dashboard: providers, sandbox emulators, store, sync engine and figures."""
