"""theory subpackage."""
