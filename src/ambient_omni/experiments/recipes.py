"""Declarative benchmark recipes: one TOML file per paper table, expanded into cells.

A recipe names a shared base configuration and a list of *settings* (e.g. one per corruption
strength); every setting is crossed with every *method* and every training *seed*. A cell is
one (setting, method, seed) triple and is the unit the benchmark runner executes, caches and
resumes. Keys of a setting override the base; a method may carry its own overrides too.

A method's optional ``description`` (plain words, e.g. "the clean images only") is printed when its cells run
and is not part of the cell's configuration. Methods (how the annotation file for the training run is made):

- ``clean-only``: corrupted images get sigma_min = inf (never used); the clean images train alone.
- ``all-data``: every image is treated as clean (the naive baseline: no annotation).
- ``fixed``: every corrupted image gets one ``sigma_min`` (the paper's fixed baseline).
- ``classifier``: sigma_min from the noise-conditional classifier (``annotate_fast``).
- ``crossing``: one sigma_min for every corrupted image where the theory's mixed-data bound beats the clean-only
  bound, its bias measured by a noise classifier on held-out images (:mod:`ambient_omni.annotate.crossing_rule`).
- ``ood-fixed``: OOD images get sigma_min = inf and one ``sigma_max`` (paper Table 1b baseline).
- ``ood-crops``: OOD images get sigma_max from crop classifiers and the locality map.
- ``noise-check``: no denoiser; a classifier annotates images with additive Gaussian noise of known
  ``noise_std`` (paper Table 7, :mod:`ambient_omni.experiments.noise_sanity`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ambient_omni.errors import AmbientError

METHODS = ("clean-only", "all-data", "fixed", "classifier", "crossing", "quality", "ood-fixed", "ood-crops",
           "noise-check")
RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"


@dataclass(frozen=True)
class Cell:
    """One benchmark cell: a fully resolved configuration for one (setting, method, seed)."""

    recipe: str
    setting: str
    method: str
    seed: int
    config: dict[str, Any] = field(hash=False, compare=False)
    description: str = field(default="", hash=False, compare=False)

    @property
    def name(self) -> str:
        """Folder-safe identifier, e.g. ``blur-0.6__classifier__seed1``."""
        return f"{self.setting}__{self.method}__seed{self.seed}"

    def key(self) -> str:
        """Content hash of the resolved configuration: a cached result is reused only if it matches."""
        blob = json.dumps(self.config, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: its name, description, the paper's numbers, the expanded cells and, optionally, what
    longer benchmarks of the same question concluded (``conclusion``, plain words with the numbers, quoted by
    ``ambient demo`` after its own verdict)."""

    name: str
    description: str
    paper: dict[str, Any]
    cells: tuple[Cell, ...]
    path: Path
    conclusion: str = ""

    def cell(self, name: str) -> Cell:
        """The cell called ``name`` (e.g. ``blur-1.0__classifier__seed0``); an error lists the names."""
        for c in self.cells:
            if c.name == name:
                return c
        names = ", ".join(c.name for c in self.cells)
        raise AmbientError(f"recipe {self.name!r} has no cell {name!r}; cells: {names}")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``override`` wins; nested tables merge key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def recipe_names() -> list[str]:
    """Names of the recipes shipped with the package (``ambient_omni/recipes/*.toml``)."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml")) if RECIPE_DIR.is_dir() else []


def find_recipe(name_or_path: str | os.PathLike) -> Path:
    """Resolve a recipe given as a path or as a name of a shipped recipe (:func:`recipe_names`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = RECIPE_DIR / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    known = ", ".join(recipe_names()) or "none"
    raise AmbientError(f"recipe {name_or_path!r} not found (a .toml path, or one of: {known})")


def _require(table: dict[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise AmbientError(f"{where}: missing key {key!r}")
    return table[key]


def _expand(raw: dict[str, Any], path: Path) -> tuple[Cell, ...]:
    """Cross settings x methods x seeds into cells with resolved configurations."""
    base = raw.get("base", {})
    seeds = _require(raw, "seeds", str(path))
    settings = _require(raw, "settings", str(path))
    methods = _require(raw, "methods", str(path))
    cells = []
    for setting in settings:
        sname = _require(setting, "name", f"{path}: [[settings]]")
        for method in methods:
            mname = _require(method, "name", f"{path}: [[methods]]")
            kind = method.get("method", mname)
            if kind not in METHODS:
                raise AmbientError(f"{path}: method {kind!r} unknown (one of {', '.join(METHODS)})")
            overrides = {k: v for k, v in method.items() if k not in ("name", "method", "description")}
            config = _merge(_merge(base, {k: v for k, v in setting.items() if k != "name"}), overrides)
            config["method"] = kind
            for seed in seeds:
                cells.append(Cell(raw["name"], sname, mname, int(seed), {**config, "seed": int(seed)},
                                  str(method.get("description", ""))))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise AmbientError(f"{path}: two cells share a name; give settings and methods unique names")
    return tuple(cells)


def parse_override(text: str) -> dict[str, Any]:
    """``"train.images=60000"`` -> ``{"train": {"images": 60000}}`` (the value is read as TOML)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise AmbientError(f"--set {text!r}: expected KEY=VALUE, e.g. train.images=60000")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()  # a bare word is a string
    node: dict[str, Any] = {}
    root = node
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node[part] = {}
        node = node[part]
    node[parts[-1]] = parsed
    return root


def load_recipe(name_or_path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """Read and expand a recipe TOML file; errors name the file and the problem.

    ``overrides`` (``KEY=VALUE`` with dotted keys) are merged into the recipe's ``base`` table and
    win over every setting and method, e.g. ``["train.images=60000"]`` shortens every run.
    """
    path = find_recipe(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise AmbientError(f"{path}: not valid TOML ({err})") from None
    for text in overrides or []:
        override = parse_override(text)
        raw["base"] = _merge(raw.get("base", {}), override)
        for table in raw.get("settings", []) + raw.get("methods", []):
            for key, value in override.items():
                if key in table:
                    table[key] = _merge(table[key], value) if isinstance(value, dict) and isinstance(table[key], dict) else value
    name = _require(raw, "name", str(path))
    return Recipe(name, raw.get("description", ""), raw.get("paper", {}), _expand(raw, path), path,
                  str(raw.get("conclusion", "")))
