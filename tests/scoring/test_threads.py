"""The metric core's Python threads run inside the caller's inference mode (the evaluation
computes metrics in Lightning's inference mode, with as many threads as torch has)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagenet_multilabel.scoring.heads import MultiLabelHead, SingleLabelHead
from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_heads_in_inference_mode_with_threads(threads: int) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3000, 1000, generator=gen)
    target = torch.randint(0, 1000, (3000,), generator=gen)
    valid = torch.zeros(3000, 1000, dtype=torch.bool)
    valid[torch.arange(3000), target] = True
    valid[torch.arange(0, 3000, 3), (target[::3] + 1) % 1000] = True
    heads = {"single": SingleLabelHead(), "multilabel": MultiLabelHead()}
    before = torch.get_num_threads()
    reference = Scorer({n: HeadSpec(h) for n, h in heads.items()}).score(
        "x", logits, target, valid
    )  # plain mode
    try:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            got = Scorer({n: HeadSpec(h) for n, h in heads.items()}).score(
                "x", logits.clone(), target.clone(), valid.clone()
            )
    finally:
        torch.set_num_threads(before)
    np.testing.assert_equal(got, reference)
