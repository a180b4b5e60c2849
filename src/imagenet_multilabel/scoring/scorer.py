"""The scorer: a dataset's gathered predictions -> heads -> metrics.

The one path from logits to numbers, used by the evaluation module (after its predictions
are gathered across ranks), by ``score`` (from saved predictions) and by fine-tuning's
validation. The heads of a dataset share one :class:`~.metrics.ranking.RowSummary`
(ranking and softmax statistics computed once).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.core.runtime import one_torch_thread
from imagenet_multilabel.data.datasets.class_subsets import restrict_logits
from imagenet_multilabel.scoring.heads import Head
from imagenet_multilabel.scoring.metrics.catalog import declaration
from imagenet_multilabel.scoring.metrics.multilabel import main_object_metrics
from imagenet_multilabel.scoring.metrics.ranking import RowSummary


@dataclass(frozen=True)
class HeadSpec:
    """A configured head: ``optional`` heads that need labels are skipped for datasets
    without a label set (the default multi-label head); ``prefix`` goes before each of its
    metric names (to keep two heads with the same metrics apart)."""

    head: Head
    optional: bool = False
    prefix: str = ""


#: what :meth:`Scorer.score` does with logits that are not finite (inf, NaN)
NONFINITE_CHOICES = ("error", "score")


class NonFiniteLogitsError(UserError):
    """A dataset's logits hold inf or NaN: its metrics would be numbers that mean nothing."""


class Scorer:
    """Scores datasets with a fixed set of heads (name -> :class:`HeadSpec`).

    ``nonfinite_logits``: ``"error"`` (default) refuses a dataset whose logits hold an inf
    or a NaN (:class:`NonFiniteLogitsError`: the dataset, how many images, the first few,
    the likely cause); ``"score"`` scores them as they are (softmax and ranking then give
    NaN scores to those rows: NaN nll/ece, AP ranking them first) and adds
    ``num_nonfinite``, the number of such images, after ``num_images``.
    """

    def __init__(self, heads: Mapping[str, HeadSpec], nonfinite_logits: str = "error") -> None:
        if not heads:
            raise UserError("no head configured: use head=default")
        if nonfinite_logits not in NONFINITE_CHOICES:
            raise UserError(
                f"nonfinite_logits={nonfinite_logits!r}: use {' or '.join(NONFINITE_CHOICES)}"
            )
        self.heads = dict(heads)
        self.nonfinite_logits = nonfinite_logits
        # dataset -> whether it has a label set, as :meth:`check_labels` checked it: each
        # dataset is checked once (before any work), not again when it is scored
        self._checked: dict[str, bool] = {}

    @property
    def names(self) -> list[str]:
        return list(self.heads)

    def metric_names(self, labelled: bool) -> list[str]:
        """The metric names the heads write for a dataset with (``labelled``) or without a
        label set, in the order :meth:`score` writes them: scored on four made-up images
        (the names do not depend on the data). What ``optimized_metric`` and
        ``checkpoint.monitor`` are checked against before a run."""
        logits = torch.linspace(-1, 1, 4 * NUM_CLASSES).reshape(4, NUM_CLASSES)
        target = torch.tensor([0, 1, 2, 3])
        valid = None
        if labelled:
            valid = torch.zeros(4, NUM_CLASSES, dtype=torch.bool)
            valid[torch.arange(4), target] = True
            valid[0, 5] = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(self._score("names", logits, target, valid))  # a probe: no check

    def check_labels(self, datasets_with_labels: Mapping[str, bool]) -> None:
        """Before any work: a head that needs labels and is not optional needs every
        dataset to have a label set. Once per dataset: a dataset checked before (by a
        run's check, before the model is made) is not checked again when it is scored."""
        unchecked = {
            d: has for d, has in datasets_with_labels.items() if self._checked.get(d) != has
        }
        if not unchecked:
            return
        for name, spec in self.heads.items():
            if not spec.head.needs_labels or spec.optional:
                continue
            missing = [d for d, has in unchecked.items() if not has]
            if missing:
                raise UserError(
                    f"head '{name}' needs a label set but dataset '{missing[0]}' has none: "
                    "pass labels=... or use head=single"
                )
        self._checked.update(unchecked)

    def score(
        self,
        dataset: str,
        logits: Tensor,
        target: Tensor,
        valid: Tensor | None,
        class_subset: Sequence[int] | None = None,
        main: Tensor | None = None,
    ) -> dict[str, float]:
        """Every head's metrics for one dataset, ``num_images`` first. A metric name that
        two heads write with different values is an error (never a silent overwrite), and
        so is one that the metric catalog does not declare.
        ``class_subset``: the dataset's classes (e.g. the 200 of ImageNet-A); the logits of
        every other class are excluded before any metric (the standard protocol).
        ``main``: each image's main object (label sets that name one, -1 where none):
        adds ``main_top1`` and its label-count subgroups, whatever the heads; a dataset no
        :meth:`check_labels` saw is checked first."""
        self.check_labels({dataset: valid is not None})
        return self._score(dataset, logits, target, valid, class_subset, main)

    def _score(
        self,
        dataset: str,
        logits: Tensor,
        target: Tensor,
        valid: Tensor | None,
        class_subset: Sequence[int] | None = None,
        main: Tensor | None = None,
    ) -> dict[str, float]:
        """:meth:`score`, its label sets checked."""
        nonfinite = self.check_finite(dataset, logits, class_subset)
        logits = restrict_logits(logits, class_subset)
        used = {n: s for n, s in self.heads.items() if valid is not None or not s.head.needs_labels}
        metrics: dict[str, float] = {"num_images": int(target.shape[0])}
        if self.nonfinite_logits == "score":
            metrics["num_nonfinite"] = nonfinite
        if not used:
            return metrics
        compatible = valid is None or (valid.ndim == 2 and valid.shape == logits.shape)
        ranks = max(s.head.ranks(valid if compatible else None) for s in used.values())
        writer: dict[str, str] = {"num_images": "scorer"}
        with one_torch_thread():
            summary = RowSummary(logits, ranks)
            for name, spec in used.items():
                for key, value in spec.head.metrics(logits, target, valid, summary).items():
                    _check_declared(name, key)
                    key = spec.prefix + key
                    if key in metrics and not _same(metrics[key], value):
                        raise UserError(
                            f"heads '{writer[key]}' and '{name}' both write metric '{key}': "
                            f"give one a prefix, e.g. head.{name}.prefix={name}."
                        )
                    metrics[key] = value
                    writer.setdefault(key, name)
            if main is not None:
                metrics.update(main_object_metrics(logits, main, valid, summary))
        return metrics

    def check_finite(
        self, dataset: str, logits: Tensor, class_subset: Sequence[int] | None = None
    ) -> int:
        """The number of images (rows) whose logits (of ``class_subset``'s classes) hold an
        inf or a NaN; with ``nonfinite_logits="error"``, none or a
        :class:`NonFiniteLogitsError`."""
        if class_subset is not None and logits.ndim == 2:
            index = torch.as_tensor(list(class_subset), dtype=torch.long, device=logits.device)
            if index.numel() and int(index.min()) >= 0 and int(index.max()) < logits.shape[1]:
                logits = logits[:, index]
        if not logits.is_floating_point() or logits.numel() == 0:
            return 0
        if logits.ndim != 2:
            bad = ~torch.isfinite(logits)
        else:  # a row's sum is finite unless it holds inf/NaN or overflows: check those only
            bad = ~torch.isfinite(logits.sum(dim=1, dtype=logits.dtype))
            if bool(bad.any()):
                suspect = bad.nonzero().flatten()
                bad[suspect] = ~torch.isfinite(logits[suspect]).all(dim=1)
        count = int(bad.sum())
        if count and self.nonfinite_logits != "score":
            rows = bad.nonzero().flatten()
            first = ", ".join(str(int(i)) for i in rows[:5]) + (", ..." if count > 5 else "")
            kinds = " and ".join(
                k
                for k, t in (("inf", torch.isinf(logits).any()), ("NaN", torch.isnan(logits).any()))
                if bool(t)
            )
            raise NonFiniteLogitsError(
                f"dataset '{dataset}': the logits of {count} of {int(bad.numel())} images hold "
                f"{kinds} (images {first}, by position in the dataset), likely a float16 overflow "
                "(autocast, half-precision weights) or a diverged model: nothing is scored; fix "
                "the model, or score them as they are with nonfinite_logits=score (metrics.json "
                "then counts them in num_nonfinite)"
            )
        return count


def _check_declared(head: str, metric: str) -> None:
    """Every metric written has a declaration, which the summary, the leaderboard, the
    config check and W&B read (its direction, display, place)."""
    if declaration(metric, ()) is None:
        raise UserError(
            f"head '{head}' writes metric '{metric}', which no declaration names: declare it "
            "in METRICS of imagenet_multilabel/scoring/metrics/catalog.py"
        )


def _same(a: float, b: float) -> bool:
    return a == b or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    )
