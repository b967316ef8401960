"""OCR languages: what Tesseract has models for, and checking a requested ``eng+vie``-style set.

One check for both services: the API refuses a language with no model at upload (400), the
worker checks again before reading (the models on its host are the ones that count).
"""

from __future__ import annotations

from pathlib import Path

# What the API accepts when its own host has no models to look at (a split deployment): the
# languages every untxt worker installs. The worker's check stays the final word.
BUNDLED_LANGUAGES = frozenset({"eng", "vie"})


class UnsupportedLanguageError(ValueError):
    """No installed model for (part of) the requested language."""


def installed_languages(tessdata_dir: str) -> set[str]:
    # osd is Tesseract's orientation model, not a language to read.
    return {p.stem for p in Path(tessdata_dir).glob("*.traineddata")} - {"osd"}


def check_language(language: str, available: set[str] | frozenset[str]) -> str:
    """``eng``, ``vie``, ``eng+vie``...: every part must be in ``available``. Returns the
    normalised form (lower case, no empty parts)."""
    parts = [p for p in language.strip().lower().split("+") if p]
    if not parts or any(p not in available for p in parts):
        raise UnsupportedLanguageError(f"language {language!r} is not installed (have: {', '.join(sorted(available))})")
    return "+".join(parts)
