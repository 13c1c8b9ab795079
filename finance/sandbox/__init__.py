"""Offline emulators of the Pluggy and Plaid HTTP APIs, plugged into the real clients as httpx transports."""
