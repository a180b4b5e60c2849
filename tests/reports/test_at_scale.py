"""A leaderboard of hundreds of rows stays readable: notes name a few models, the rest
are counted (reports/at_scale.py)."""

from __future__ import annotations

import random

from imagenet_multilabel.reports.at_scale import SHOWN_NAMES, short_list, short_note


def test_lists_of_any_length_name_a_few_models_and_count_the_rest() -> None:
    rng = random.Random(0)
    for _ in range(50):
        names = [f"model_{i}.tag" for i in range(rng.randint(1, 400))]
        text = short_list(names)
        if len(names) <= SHOWN_NAMES + 1:
            assert text == ", ".join(names)
        else:
            assert text == f"{', '.join(names[:SHOWN_NAMES])} and {len(names) - SHOWN_NAMES} more"
        note = f"gap of {', '.join(names)}: photos8 has no label-count subgroups"
        short = short_note(note)
        assert short.endswith(": photos8 has no label-count subgroups")
        assert short.count("model_") == min(len(names), SHOWN_NAMES if len(names) > 6 else 6)
    assert short_note("no testbed figures: no model has top1") == (
        "no testbed figures: no model has top1"
    )
