"""Debian's headless Chromium driven by Playwright, for the tests of the web pages (the console, the institutional
page): started once per test module, stopped by its handle. Playwright never downloads a browser here."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Playwright's Browser); a missing Chromium fails the test loudly."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium is missing at {CHROMIUM} (apt-get install --no-install-recommends chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--disable-background-networking", "--disable-component-update",
                                    "--no-first-run", "--disable-sync", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()
