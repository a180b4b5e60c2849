"""top-1/top-5 of evaluate.py equal those of timm's validate.py on the same real photos,
for every network with real weights offline (tf_efficientnet_lite0/1/2), through
benchmarks/compare_timm.py. Needs the 1000-photo sample (../shared/data) and timm's
validate.py (not in the pip package: TIMM_VALIDATE=/path/to/pytorch-image-models/validate.py);
skipped without them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from imagenet_multilabel.models.backbones import LITE_PACKAGES
from tests.helpers import SAMPLE, requires_sample, run

VALIDATE = os.environ.get("TIMM_VALIDATE", "")


@pytest.mark.slow
@requires_sample
@pytest.mark.skipif(
    not Path(VALIDATE).is_file(), reason="needs timm's validate.py: set TIMM_VALIDATE"
)
@pytest.mark.parametrize("model", sorted(p.model for p in LITE_PACKAGES.values()))
def test_top1_top5_equal_timm_validate(model: str) -> None:
    proc = run(
        ["benchmarks/compare_timm.py", "--model", model, "--limit", "200"],
        env={"IMAGENET_ML_SAMPLE": str(SAMPLE), "TIMM_VALIDATE": VALIDATE},
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    diff = re.search(r"ours vs timm\s+([-+][\d.]+)\s+([-+][\d.]+)", proc.stdout)
    assert diff and float(diff.group(1)) == 0 and float(diff.group(2)) == 0, proc.stdout
