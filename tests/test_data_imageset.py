"""ImageSet and the uint8 <-> [-1, 1] convention."""

import numpy as np
import pytest
import torch

from ambient_omni.data.imageset import ImageSet, from_uint8, to_uint8


def test_uint8_round_trip_is_exact_for_every_code() -> None:
    codes = torch.arange(256, dtype=torch.uint8)
    values = from_uint8(codes)
    assert torch.allclose(values.double(), codes.double() / 127.5 - 1, rtol=0, atol=1e-7)
    assert values[0] == -1 and values[-1] == 1
    assert torch.equal(to_uint8(values), codes)


def test_to_uint8_rounds_and_saturates() -> None:
    x = torch.tensor([-2.0, -1.0, 1.0, 5.0, (3.4 / 127.5) - 1, (3.6 / 127.5) - 1])
    assert to_uint8(x).tolist() == [0, 0, 255, 255, 3, 4]
    with pytest.raises(ValueError):
        to_uint8(torch.tensor([float("nan")]))
    with pytest.raises(TypeError):
        from_uint8(torch.zeros(2))


def test_subset_keeps_labels_names_and_source_index() -> None:
    images = ImageSet.from_uint8(np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 1, 2, 3),
                                 labels=np.array([0, 1, 2, 1, 0]), class_names=["a", "b", "c"])
    assert len(images) == 5 and images.shape == (1, 2, 3)
    part = images.subset([3, 1])
    assert part.labels.tolist() == [1, 1] and part.names == ["3", "1"]
    assert part.source_index.tolist() == [3, 1]
    assert torch.equal(part.to_uint8(), images.to_uint8()[[3, 1]])
    assert part.subset([1]).source_index.tolist() == [1]
    with pytest.raises(IndexError):
        images.subset([5])


def test_validation_rejects_inconsistent_fields() -> None:
    with pytest.raises(ValueError):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(3, dtype=torch.int64), ["a", "b"])
    with pytest.raises(ValueError):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), ["a"])
    with pytest.raises(ValueError):
        ImageSet(torch.zeros(2, 4, 4), torch.zeros(2, dtype=torch.int64), ["a", "b"])
