"""Definitions shared by the API (backend/) and the worker (worker/): one copy of each."""
