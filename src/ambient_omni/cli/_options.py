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


def preset_network(preset: str, kind: str, in_channels: int, overrides: dict, channel_mult: str | None) -> dict:
    """The network config of ``preset`` for ``in_channels``-channel images, with the command line's ``overrides``
    (those not None) and ``channel_mult`` (``"1,2,2"``) applied; a preset of another ``kind`` is an error."""
    from ambient_omni.networks.registry import preset_config

    config = preset_config(preset, in_channels=in_channels)
    if config.get("kind") != kind:
        raise AmbientError(f"--preset {preset} is not a{'n' if kind[0] in 'aeiou' else ''} {kind} preset")
    config.update({key: value for key, value in overrides.items() if value is not None})
    if channel_mult:
        config["channel_mult"] = [int(v) for v in channel_mult.split(",")]
    return config
