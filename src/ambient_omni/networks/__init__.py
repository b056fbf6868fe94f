"""networks subpackage."""
