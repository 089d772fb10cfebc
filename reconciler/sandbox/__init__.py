"""Embedded servers for the demo and for tests: no network, no process of their own."""
