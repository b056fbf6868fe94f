"""Shared option parsing: comma-separated numbers."""

import pytest

from ambient_omni.cli._options import comma_floats
from ambient_omni.errors import AmbientError


def test_comma_floats_parses_and_names_the_option_on_error() -> None:
    assert comma_floats("0.1, 2,,3", "--x") == [0.1, 2.0, 3.0]
    assert comma_floats("", "--x") == []
    with pytest.raises(AmbientError, match="--ratios 'a,1': expected comma-separated numbers"):
        comma_floats("a,1", "--ratios")
