"""What the Chromium tests share: console-error collection and optional screenshots."""

from __future__ import annotations

import os
from pathlib import Path

#: set SZ_SCREENSHOTS=/some/dir to keep screenshots of the pages the tests walk through
SCREENSHOTS = os.environ.get("SZ_SCREENSHOTS")


def collect_console_errors(message, errors: list[str]) -> None:  # noqa: ANN001 - Playwright
    """Keep script errors and CSP violations (a failed request, e.g. 401 for a wrong code, is
    expected and shown on the page)."""
    text = message.text
    if message.type == "error" and "Failed to load resource" not in text:
        errors.append(text)
    elif "Content Security Policy" in text or "Refused to" in text:
        errors.append(text)


def _shot_path(name: str) -> str | None:
    if not SCREENSHOTS:
        return None
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    return str(Path(SCREENSHOTS) / f"{name}.png")


async def screenshot(page, name: str, *, full_page: bool = False) -> None:  # noqa: ANN001
    """Save a screenshot of ``page`` as ``name``.png when SZ_SCREENSHOTS is set."""
    if path := _shot_path(name):
        await page.screenshot(path=path, full_page=full_page)
