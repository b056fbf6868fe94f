"""Errors that mean "the input is wrong", reported to users as one clear line."""


class AmbientError(ValueError):
    """Bad user input (file, option, dataset, annotation): the message names the culprit."""
