"""The GitHub-owned actions the kit uses, pinned by full commit SHA (from shared/PINS.md).

The workflows and actions spell these as ``uses: OWNER/REPO[/PATH]@SHA # vX.Y.Z``; a test checks that
every such ``uses:`` agrees with this table, and the local harness maps exactly these refs to its
stand-ins under ``tests/act/``.
"""

from __future__ import annotations

PINS: dict[str, tuple[str, str]] = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/cache": ("27d5ce7f107fe9357f9df03efb73ab90386fccae", "v5.0.5"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
}

# Stood in under act (GitHub's infrastructure); actions/checkout is done by act itself.
STOOD_IN = ("actions/cache", "actions/upload-artifact", "actions/download-artifact", "actions/setup-python")
