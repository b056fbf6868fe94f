"""evaluate(): one call gives every metric; inputs from tensors, samples.npz and dataset folders."""

import json

import numpy as np
import pytest
import torch

from ambient_omni.errors import AmbientError
from ambient_omni.metrics.evaluate import evaluate, fixed_subset, format_table, load_images

OPTS = {"shape": (1, 8, 8)}


def _images(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 8, 8, generator=gen) * 1.6 - 0.8 + shift).clamp(-1, 1)


def test_all_metrics_present_and_sensible(tmp_path):
    ref, train = _images(120, 0), _images(60, 1)
    samples = torch.cat([train[:20], _images(40, 2)])  # 20 exact training copies
    kwargs = dict(features=["pixels"], train_set=train, kid_subsets=5, kid_subset_size=40, patch_size=4,
                  cache_dir=tmp_path, extractor_options=OPTS, progress=False)
    result = evaluate(samples, ref, **kwargs)
    pix = result["features"]["pixels"]
    assert result["n_samples"] == 60 and result["n_reference"] == 120
    assert pix["fd"] > 0 and 0 <= pix["precision"] <= 1 and 0 <= pix["recall"] <= 1
    assert result["memorization"]["share"] == pytest.approx(20 / 60)
    shifted = evaluate(_images(60, 3, shift=0.5), ref, **kwargs)
    assert shifted["features"]["pixels"]["fd"] > pix["fd"]
    assert shifted["pixels"]["patch_fd"] > result["pixels"]["patch_fd"]
    json.dumps(result)  # JSON-ready
    table = format_table(result)
    assert "FD" in table and "pixels" in table and "memorization" in table


def test_vendi_of_samples_and_of_the_equal_sized_reference_subset(tmp_path):
    """Every feature set reports ``vendi`` next to ``fd`` and ``vendi_reference`` for the precision/recall rows."""
    from ambient_omni.metrics.cache import reference_statistics
    from ambient_omni.metrics.features import get_extractor
    from ambient_omni.metrics.vendi import vendi_score

    ref = _images(80, 0)
    kwargs = dict(features=["pixels"], kid_subsets=2, kid_subset_size=20, patch_size=4, cache_dir=tmp_path,
                  extractor_options=OPTS, progress=False)
    varied = evaluate(_images(30, 1), ref, **kwargs)["features"]["pixels"]
    copies = evaluate(_images(1, 2).repeat(30, 1, 1, 1), ref, **kwargs)
    pix = copies["features"]["pixels"]
    assert {"fd", "vendi", "vendi_reference"} <= set(pix)
    assert pix["vendi"] == pytest.approx(1.0, abs=1e-6) and varied["vendi"] > 2
    real = reference_statistics(ref, get_extractor("pixels", **OPTS), cache_dir=tmp_path, progress=False).features
    rows = np.random.default_rng(0).permutation(80)[:30]
    assert pix["vendi_reference"] == pytest.approx(vendi_score(real[rows])) == varied["vendi_reference"]
    table = format_table(copies)
    assert "Vendi (ref)" in table and f"{pix['vendi']:.2f} ({pix['vendi_reference']:.2f})" in table
    del copies["features"]["pixels"]["vendi"]  # a metrics.json written before the Vendi score
    vendi_row = [line for line in format_table(copies).splitlines() if line.startswith("Vendi (ref)")]
    assert vendi_row[0].split()[-1] == "-"


def test_n_ref_uses_fixed_subset(tmp_path):
    ref = _images(50, 0)
    result = evaluate(_images(20, 1), ref, ["pixels"], n_ref=30, kid_subsets=2, kid_subset_size=10,
                      patch_size=4, cache_dir=tmp_path, extractor_options=OPTS, progress=False)
    assert result["n_reference"] == 30
    assert np.array_equal(fixed_subset(50, 30), fixed_subset(50, 30)) and len(set(fixed_subset(50, 30))) == 30


def test_loads_npz_and_dataset_folder(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, size=(5, 1, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "samples.npz", images=data)
    (tmp_path / "ds").mkdir()
    np.save(tmp_path / "ds" / "images.npy", data)
    expected = torch.from_numpy(data).float() / 127.5 - 1
    assert torch.equal(load_images(str(tmp_path / "samples.npz"), "samples"), expected)
    assert torch.equal(load_images(str(tmp_path), "samples"), expected)
    assert torch.equal(load_images(str(tmp_path / "ds"), "train"), expected)
    np.savez(tmp_path / "bad.npz", pictures=data)
    with pytest.raises(AmbientError, match="no 'images'"):
        load_images(str(tmp_path / "bad.npz"), "samples")


def test_shape_mismatch_is_user_error(tmp_path):
    with pytest.raises(AmbientError, match="shape"):
        evaluate(torch.zeros(4, 1, 6, 6), _images(10, 0), ["pixels"], cache_dir=tmp_path, progress=False)


def test_k_zero_is_refused_before_any_work(tmp_path):
    with pytest.raises(AmbientError, match="--k"):
        evaluate(str(tmp_path / "not-read.npz"), _images(10, 0), ["pixels"], k=0, cache_dir=tmp_path, progress=False)


def _run_folder(root, finals=("final",)):
    """A training run as `ambient train` + `ambient sample` leave it: log, RGBA preview PNG, samples/<name>/samples.npz."""
    from PIL import Image

    (root / "samples").mkdir(parents=True)
    (root / "log.jsonl").write_text('{"step": 1}\n')
    Image.new("RGBA", (8, 8)).save(root / "samples" / "preview-00000001.png")
    for name in finals:
        (root / "samples" / name).mkdir()
        np.savez(root / "samples" / name / "samples.npz", images=np.zeros((4, 1, 8, 8), dtype=np.uint8))
    return root


def test_run_folder_resolves_to_its_one_samples_file(tmp_path):
    from ambient_omni.metrics.evaluate import samples_file

    run = _run_folder(tmp_path / "run")
    assert samples_file(run) == run / "samples" / "final" / "samples.npz"
    assert samples_file(run / "samples" / "final") == run / "samples" / "final" / "samples.npz"
    assert samples_file("fashion-mnist:test") is None and samples_file(torch.zeros(1)) is None
    assert load_images(str(run), "samples").shape == (4, 1, 8, 8)  # not the RGBA preview


def test_run_folder_without_or_with_several_samples_says_what_to_pass(tmp_path):
    with pytest.raises(AmbientError, match=r"without samples.npz .*ambient sample --model"):
        load_images(str(_run_folder(tmp_path / "a", finals=())), "samples")
    with pytest.raises(AmbientError, match=r"holds 2 samples.npz files; pass one folder: .*samples/early"):
        load_images(str(_run_folder(tmp_path / "b", finals=("early", "final"))), "samples")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_samples_file_is_a_user_error(tmp_path, keep):
    np.savez_compressed(tmp_path / "samples.npz", images=np.random.default_rng(0).integers(0, 256, (20, 1, 8, 8),
                                                                                            dtype=np.uint8))
    blob = (tmp_path / "samples.npz").read_bytes()
    (tmp_path / "samples.npz").write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(AmbientError, match=r"samples\.npz: cannot read the samples file, truncated or damaged"):
        load_images(str(tmp_path / "samples.npz"), "samples")


def test_precision_recall_by_density_test_and_by_balls(tmp_path):
    """Both precision/recall variants are reported; the protocol records k, the quantile and the balls' k."""
    result = evaluate(_images(40, 1), _images(60, 0), ["pixels"], kid_subsets=2, kid_subset_size=20,
                      cache_dir=tmp_path, extractor_options=OPTS, progress=False)
    pix = result["features"]["pixels"]
    assert {"precision", "recall", "precision_balls", "recall_balls"} <= set(pix)
    assert result["protocol"]["k"] == 5 and result["protocol"]["pr_quantile"] == 0.9 and result["protocol"]["k_balls"] == 3
    assert "P / R balls" in format_table(result)
    with pytest.raises(AmbientError, match="pr_quantile"):
        evaluate(_images(40, 1), _images(60, 0), ["pixels"], pr_quantile=1.5, cache_dir=tmp_path, progress=False)


def test_class_coverage_of_labelled_samples_against_a_labelled_reference(tmp_path):
    from ambient_omni.data.imageset import ImageSet

    images = torch.cat([_images(40, 0) * 0.2 - 0.6, _images(40, 1) * 0.2 + 0.6])  # two well-separated classes
    labels = torch.repeat_interleave(torch.tensor([0, 1]), 40)
    reference = ImageSet(images, labels, [f"i{k}" for k in range(80)])
    kwargs = dict(features=["pixels"], kid_subsets=2, kid_subset_size=20, patch_size=4, cache_dir=tmp_path,
                  extractor_options=OPTS, progress=False)
    samples = images[::2]  # 20 of each class, asked for under their own label
    result = evaluate(samples, reference, sample_labels=labels[::2].numpy(), **kwargs)["features"]["pixels"]
    assert set(result["class_coverage"]) == {"0", "1"} and result["class_coverage_min"] > 0.4
    swapped = evaluate(samples, reference, sample_labels=1 - labels[::2].numpy(), **kwargs)["features"]["pixels"]
    assert swapped["class_coverage"] == {"0": 0.0, "1": 0.0}  # every image drawn under the other class
    unconditional = evaluate(samples, reference, sample_labels=np.full(40, -1), **kwargs)
    assert "class_coverage" not in unconditional["features"]["pixels"]
    assert "class coverage min" in format_table(evaluate(samples, reference, sample_labels=labels[::2].numpy(),
                                                         **kwargs))
