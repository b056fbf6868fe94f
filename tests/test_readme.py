"""The README's library example runs as written (on a tiny dataset folder and a small network)."""

import re
from pathlib import Path

import numpy as np
import torch

from ambient_omni.data.annotations import AnnotationTable, write_annotations
from ambient_omni.data.imageset import ImageSet
from ambient_omni.data.dataset_folder import load_dataset, write_dataset
from ambient_omni.data.mixed import build_mixed
from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.networks.registry import build_network, preset_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    gen = torch.Generator().manual_seed(0)
    images = ImageSet(torch.rand(40, 1, 28, 28, generator=gen) * 2 - 1, torch.zeros(40, dtype=torch.int64),
                      [f"img{i}" for i in range(40)])
    folder = tmp_path / "blur06"
    write_dataset(folder, build_mixed(images, parse_corruption("blur:sigma=0.6"), 0.25, 0, "random"))
    data = load_dataset(folder)
    write_annotations(folder / "annotations.jsonl",
                      AnnotationTable.fixed(data.ids.numpy(), data.provenance, 1.0, dataset_sha256=data.sha256))
    code = code.replace('"data/blur06', f'"{folder}').replace("    ...", "    losses.append(loss.item()); break")
    namespace = {"my_net": build_network(preset_config("fmnist-small")), "losses": []}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert len(namespace["losses"]) == 1 and np.isfinite(namespace["losses"][0])
