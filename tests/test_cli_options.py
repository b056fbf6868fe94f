"""Shared option parsing: comma-separated numbers."""

import pytest

from ambient_omni.cli._options import comma_floats
from ambient_omni.errors import AmbientError


def test_comma_floats_parses_and_names_the_option_on_error() -> None:
    assert comma_floats("0.1, 2,,3", "--x") == [0.1, 2.0, 3.0]
    assert comma_floats("", "--x") == []
    with pytest.raises(AmbientError, match="--ratios 'a,1': expected comma-separated numbers"):
        comma_floats("a,1", "--ratios")


def test_preset_network_applies_given_overrides_and_checks_the_kind() -> None:
    import pytest

    from ambient_omni.cli._options import preset_network
    from ambient_omni.errors import AmbientError

    config = preset_network("fmnist-ae", "autoencoder", 3, {"latent_channels": 2, "num_blocks": None}, "1,2")
    assert config["in_channels"] == 3 and config["latent_channels"] == 2 and config["channel_mult"] == [1, 2]
    assert config["num_blocks"] == 1  # None leaves the preset's value
    with pytest.raises(AmbientError, match="--preset fmnist-small is not an autoencoder preset"):
        preset_network("fmnist-small", "autoencoder", 1, {}, None)
