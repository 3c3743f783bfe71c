"""The one base of palaestrio's errors; each area's error derives from it."""

from __future__ import annotations


class PalaestrioError(Exception):
    """Something palaestrio can name: a bad file, a component, the store, the executor."""
