"""metrics subpackage."""
