"""The untxt HTTP API (aiohttp)."""
