"""The two aiohttp sites of the box: staff (LAN) and public (patients)."""
