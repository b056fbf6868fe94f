"""Parsing shared by several commands' options (not a command: the leading underscore keeps it out of
``ambient``'s subcommand discovery)."""

from __future__ import annotations

from ambient_omni.errors import AmbientError


def comma_floats(text: str, option: str) -> list[float]:
    """``"0.1, 2,3"`` -> ``[0.1, 2.0, 3.0]`` (blank parts skipped); anything else is an error naming ``option``."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AmbientError(f"{option} {text!r}: expected comma-separated numbers") from None


def require_positive(option: str, value: int) -> int:
    """``value`` if it is >= 1; else an :class:`AmbientError` naming ``option`` (a 0 chunk or batch divides by
    zero or silently runs one input per call)."""
    if value < 1:
        raise AmbientError(f"{option} must be a positive int, got {value}")
    return value
