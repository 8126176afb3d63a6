"""Debian's Chromium as every browser test launches it (the flags of DESIGN.md: without the
background-networking ones it tries, and fails, to reach the internet)."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
