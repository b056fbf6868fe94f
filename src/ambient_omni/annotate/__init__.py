"""annotate subpackage."""
