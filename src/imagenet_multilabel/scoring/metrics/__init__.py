"""Metrics: every metric of the project is computed once, from the tensors of a whole
dataset (gathered by :mod:`.buffer`), by the functions of one module per family:

- :mod:`.catalog`: one declaration per metric (direction, display, needs, place; no torch);
- :mod:`.names`: metric names (label-count subgroups, thresholds in keys);
- :mod:`.ranking`: tie-broken rankings, the shared per-row summary, label counts;
- :mod:`.single`: accuracy, NLL and calibration against the original label;
- :mod:`.scores`: softmax and sigmoid scores per class;
- :mod:`.average_precision`: average precision (sorted, or counted on a logit grid);
- :mod:`.multilabel`: ReaL, variable top-k, subgroups, ASMA, mAP, predicted label sets.

Torch's thread count while they run is set by :mod:`imagenet_multilabel.core.runtime`.
"""
