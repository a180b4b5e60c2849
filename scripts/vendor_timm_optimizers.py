"""Write ``src/imagenet_multilabel/training/timm_optimizers.py``: the optimizer names of
the installed timm (``timm.optim.list_optimizers()``) and its version, which the config
check of ``optim.opt`` reads before torch is imported (``training/checks.py``). Run it
after upgrading timm (``tests/training/test_timm_optimizers.py`` fails until then):

    python scripts/vendor_timm_optimizers.py
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from timm.optim import list_optimizers

TARGET = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "imagenet_multilabel"
    / "training"
    / "timm_optimizers.py"
)
HEADER = '''"""The optimizer names of timm (``timm.optim.list_optimizers()``) and the
version of timm they were taken from: ``training/checks.py`` judges ``optim.opt`` with
them before torch is imported where the installed timm is this version (else it asks
timm, later). Written by scripts/vendor_timm_optimizers.py; do not edit."""

'''


def main() -> None:
    version = importlib.metadata.version("timm")
    names = "".join(f'    "{name}",\n' for name in list_optimizers())
    TARGET.write_text(
        f'{HEADER}TIMM_VERSION = "{version}"\nNAMES = (\n{names})\n', encoding="utf-8"
    )
    print(f"{TARGET}: {len(list_optimizers())} names of timm {version}")


if __name__ == "__main__":
    main()
