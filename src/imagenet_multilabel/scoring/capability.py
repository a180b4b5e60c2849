"""The project's metrics as a public API: a ``torchmetrics.Metric`` and a function.

:class:`MultiLabelCapability` is updated batch by batch, from any LightningModule or plain
loop, with a model's ``logits``, each image's original ``target`` and its multi-hot
``valid`` labels; ``compute()`` returns the dict of metrics that ``evaluate.py`` writes to
metrics.json for a dataset (the keys after ``<dataset>/``, the same values, bit for bit).
:func:`multilabel_capability` is the same on whole tensors. Both score through the one
:class:`~imagenet_multilabel.scoring.scorer.Scorer` (heads of
:mod:`imagenet_multilabel.scoring.heads`), and the metric keeps its predictions in a
:class:`~imagenet_multilabel.scoring.metrics.buffer.PredictionBuffer`, as the evaluation
does: there is no second copy of any metric.

Inputs (one row per image):

- ``logits``: (N, C) float, the model's raw outputs (C = ``num_classes``, 1000 for
  ImageNet); softmax or sigmoid are applied by the heads.
- ``target``: (N,) int, the original single label (ImageNet's).
- ``valid``: (N, C) bool, the multi-hot set of valid labels (ReaL-style). An image without
  a valid label (ReaL leaves some out) is an all-false row: it counts in ``num_images``
  and ``num_unlabeled`` and in the single-label metrics, and in no multi-label metric, as
  in ``evaluate.py``. ``valid=None`` (with ``with_valid=False``): a dataset without a
  label set; the default multi-label head is then skipped, as ``evaluate.py`` does.

Order and DDP (exact, as the evaluation): metrics are computed on the whole dataset in
dataset order (float sums and rankings depend on it), whatever the number of processes:

- pass ``index``, each image's position in the dataset: predictions are gathered from all
  ranks and sorted by it. An index given twice is counted once (the copies that
  ``DistributedSampler`` adds to even out the shards); its copies must have the same
  target and valid labels.
- or give no ``index``: in one process, the order of the updates is the dataset order;
  under DDP, rank ``r``'s ``j``-th image is taken to be image ``j * world_size + r``, the
  split of ``DistributedSampler(shuffle=False)`` (what Lightning uses for validation and
  test by default); ``dataset_size`` is then required, to drop its padding copies.
- ``dataset_size`` (optional otherwise): checks that every image of ``0..dataset_size-1``
  was scored exactly once.

``compute()`` is collective under DDP (every rank calls it, every rank gets the same dict).
Calling the metric (``metric(logits, ...)``) only updates it and returns None: metrics of a
single batch mean little (ASMA, mAP, subgroups).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from imagenet_multilabel.scoring.heads import Head, MultiLabelHead, SingleLabelHead
from imagenet_multilabel.scoring.metrics.buffer import PredictionBuffer, Predictions
from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer

#: the heads of ``head=default`` (conf/head/default.yaml): single-label always, multi-label
#: where there are valid labels
DEFAULT_HEADS: tuple[str, ...] = ("single", "multilabel")
IMAGENET_CLASSES = 1000

HeadsArg = str | Sequence[str] | Mapping[str, Head | HeadSpec]


def _accepts(cls: type[Head]) -> set[str]:
    return set(inspect.signature(cls).parameters)


#: the heads a name stands for (conf/head/single.yaml, conf/head/multilabel.yaml)
NAMED_HEADS: dict[str, type[Head]] = {"single": SingleLabelHead, "multilabel": MultiLabelHead}
#: every option of those heads (their defaults are those of conf/head)
HEAD_OPTIONS: frozenset[str] = frozenset().union(*(_accepts(c) for c in NAMED_HEADS.values()))


def capability_scorer(heads: HeadsArg = "default", **options) -> Scorer:
    """The :class:`Scorer` of the head config these arguments name, as
    ``builders.build_scorer`` makes it from conf/head.

    ``heads``: ``"default"`` (``single`` + ``multilabel``, the latter skipped without
    valid labels: conf/head/default.yaml), ``"single"``, ``"multilabel"`` (conf/head/*.yaml),
    a sequence of those names, or a mapping name -> :class:`Head` or :class:`HeadSpec` (any
    head; no options then). ``options``: the arguments of the named heads' classes, each
    given to the heads that take it: :class:`MultiLabelHead`'s ``mode``, ``scores``, ``k``,
    ``threshold``, ``mass``, ``min_subgroup_size``, ``confidences`` (``head.multilabel.<arg>=``
    in a run) and both heads' ``ece_bins``.
    """
    unknown = sorted(set(options) - HEAD_OPTIONS)
    if unknown:
        known = ", ".join(sorted(HEAD_OPTIONS))
        raise TypeError(f"unknown head option {unknown[0]!r}: use {known}")
    if isinstance(heads, Mapping):
        if options:
            raise TypeError("head options go with named heads, not with Head objects")
        specs = {n: h if isinstance(h, HeadSpec) else HeadSpec(h) for n, h in heads.items()}
        return Scorer(specs)
    if heads == "default":
        names = list(DEFAULT_HEADS)
    else:
        names = [heads] if isinstance(heads, str) else list(heads)
    unknown = [n for n in names if n not in NAMED_HEADS]
    if unknown or not names:
        raise ValueError(
            f"heads={heads!r}: use 'default', 'single', 'multilabel', a list of those, or a "
            "mapping of names to Head objects"
        )
    optional = heads == "default"  # if_labels: true in conf/head/default.yaml
    specs = {}
    for n in names:
        cls = NAMED_HEADS[n]
        head = cls(**{k: v for k, v in options.items() if k in _accepts(cls)})
        specs[n] = HeadSpec(head, optional=optional and n == "multilabel")
    return Scorer(specs)


def multilabel_capability(
    logits: Tensor,
    target: Tensor,
    valid: Tensor | None,
    heads: HeadsArg = "default",
    *,
    class_subset: Sequence[int] | None = None,
    **head_options,
) -> dict[str, float]:
    """The metrics of one whole dataset (all its images, in dataset order), as
    ``evaluate.py`` writes them to metrics.json for it (without the ``<dataset>/``
    prefix). Inputs: see :mod:`this module <imagenet_multilabel.scoring.capability>`;
    ``heads`` and ``head_options``: see :func:`capability_scorer`; ``class_subset``: the
    classes the dataset is scored on (e.g. ImageNet-A's 200), the others' logits excluded.
    """
    _check_inputs(logits, target, valid, None, logits.shape[-1] if logits.ndim else 0)
    scorer = capability_scorer(heads, **head_options)
    return scorer.score("data", logits.float(), target.long(), _bool(valid), class_subset)


class MultiLabelCapability(PredictionBuffer):
    """Single- and multi-label metrics of a dataset, exact under DDP (a torchmetrics
    ``Metric``).

    ``update(logits, target, valid, index=None)`` per batch, ``compute()`` once per epoch
    -> the dict of metrics ``evaluate.py`` writes for a dataset (``num_images``, ``top1``,
    ``top5``, ``nll``, ``ece``, ``real_top1``, ``vartopk_strict``, ``asma``, ``map_macro``,
    ...; NaN where metrics.json has null), then ``reset()``. Inputs, order and the DDP
    contract: see :mod:`this module <imagenet_multilabel.scoring.capability>`.

    Args:
        heads: the heads (:func:`capability_scorer`; default: head=default).
        with_valid: updates give ``valid`` labels (False: a dataset without a label set).
        num_classes: the model's classes (columns of ``logits`` and ``valid``); also the
            shape of an empty shard under DDP.
        dataset_size: the number of images; checks that each was scored exactly once.
            Required under DDP when no ``index`` is given.
        class_subset: the classes the dataset is scored on (others' logits excluded).
        **kwargs: the heads' options (``mode``, ``scores``, ``k``, ``threshold``, ``mass``,
            ``min_subgroup_size``, ``ece_bins``, ``confidences``: :func:`capability_scorer`)
            and torchmetrics ``Metric`` options (``process_group``, ...).
    """

    def __init__(
        self,
        heads: HeadsArg = "default",
        *,
        with_valid: bool = True,
        num_classes: int = IMAGENET_CLASSES,
        dataset_size: int | None = None,
        class_subset: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        head_options = {k: kwargs.pop(k) for k in list(kwargs) if k in HEAD_OPTIONS}
        if dataset_size is not None and dataset_size < 1:
            raise ValueError(f"dataset_size must be at least 1, got {dataset_size}")
        super().__init__(
            dataset_size or 0, with_valid=with_valid, num_classes=int(num_classes), **kwargs
        )
        self.expected_size = dataset_size
        self.class_subset = None if class_subset is None else [int(c) for c in class_subset]
        self.scorer = capability_scorer(heads, **head_options)
        self.scorer.check_labels({"data": with_valid})  # a head that needs labels, without
        self._seen = 0  # images of this rank so far (the implicit index)
        self._indexed: bool | None = None  # whether the updates give an index

    def _wrap_compute(self, compute: Callable) -> Callable:
        # the metrics are Python numbers: nothing for PredictionBuffer to give a shape back
        return Metric._wrap_compute(self, compute)

    def forward(self, *args, **kwargs) -> None:
        """Updates only (see the module's docstring): the metrics come from ``compute()``."""
        self.update(*args, **kwargs)

    def update(
        self,
        logits: Tensor,
        target: Tensor,
        valid: Tensor | None = None,
        index: Tensor | None = None,
    ) -> None:
        """A batch: (N, C) ``logits``, (N,) ``target``, (N, C) bool ``valid`` (all-false
        row: no valid label; None with ``with_valid=False``), (N,) ``index`` (each image's
        position in the dataset; optional, see the DDP contract)."""
        _check_inputs(logits, target, valid, index, self.num_classes)
        if valid is not None and not self.with_valid:
            raise ValueError("valid labels given to a metric made with with_valid=False")
        indexed = index is not None
        if self._indexed is not None and indexed != self._indexed:
            raise ValueError("give index with every update or with none")
        self._indexed = indexed
        n = int(target.shape[0])
        if index is None:
            rank, world = self._rank_and_world()
            if world > 1 and self.expected_size is None:
                raise ValueError(
                    "under DDP, give each image's index to update(), or dataset_size= to "
                    "the metric (then rank r's j-th image is image j * world_size + r, as "
                    "DistributedSampler(shuffle=False) deals them)"
                )
            position = torch.arange(self._seen, self._seen + n, device=target.device)
            index = position * world + rank
        self._seen += n
        super().update(index.to(target.device), logits, target, _bool(valid))

    def _rank_and_world(self) -> tuple[int, int]:
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return 0, 1
        group = self.process_group
        return dist.get_rank(group), dist.get_world_size(group)

    def reset(self) -> None:
        super().reset()
        self._seen, self._indexed = 0, None

    def predictions(self) -> Predictions:
        """The (gathered) predictions in dataset order, each image once."""
        index, logits, target, valid = self.sorted_states()  # copies: lowest rank first
        first = torch.ones_like(index, dtype=torch.bool)
        first[1:] = index[1:] != index[:-1]
        _check_copies(index, first, target, valid)
        keep = first
        n = self.expected_size
        if n is not None:
            if not self._indexed:  # DistributedSampler's padding: positions past the end
                keep = keep & (index < n)
            kept = index[keep]
            if kept.numel() != n or not torch.equal(kept, torch.arange(n, device=kept.device)):
                raise RuntimeError(
                    f"scored {kept.numel()} distinct images with indices {_span(kept)} for "
                    f"dataset_size={n}: every image of 0..{n - 1} must be scored"
                )
        return Predictions(
            logits=logits[keep],
            target=target[keep],
            valid=None if valid is None else valid[keep],
        )

    def compute(self) -> dict[str, float]:
        preds = self.predictions()
        return self.scorer.score("data", preds.logits, preds.target, preds.valid, self.class_subset)


def _check_copies(index: Tensor, first: Tensor, target: Tensor, valid: Tensor | None) -> None:
    """Images given twice (sorted ``index``; ``first``: the first of each index) must be
    the same image: the same target and valid labels."""
    copies = ~first
    if not bool(copies.any()):
        return
    positions = torch.arange(first.numel(), device=first.device)
    original = torch.cummax(torch.where(first, positions, 0), dim=0).values[copies]
    same = target[copies] == target[original]
    if valid is not None:
        same &= (valid[copies] == valid[original]).all(dim=1)
    if not bool(same.all()):
        raise RuntimeError(
            f"index {int(index[copies][~same][0])} was given for two different images "
            "(another target or other valid labels): each image needs its own index"
        )


def _span(index: Tensor) -> str:
    return "none" if index.numel() == 0 else f"{int(index.min())}..{int(index.max())}"


def _bool(valid: Tensor | None) -> Tensor | None:
    return None if valid is None else valid.bool()


def _check_inputs(
    logits: Tensor, target: Tensor, valid: Tensor | None, index: Tensor | None, classes: int
) -> None:
    if logits.ndim != 2 or logits.shape[1] != classes:
        raise ValueError(f"logits must be (N, {classes}), got {tuple(logits.shape)}")
    n = logits.shape[0]
    if target.shape != (n,):
        raise ValueError(f"target must be (N,) = ({n},), got {tuple(target.shape)}")
    if valid is not None and valid.shape != logits.shape:
        raise ValueError(
            f"valid must be (N, C) like logits {tuple(logits.shape)}, got {tuple(valid.shape)}"
        )
    if index is not None and index.shape != (n,):
        raise ValueError(f"index must be (N,) = ({n},), got {tuple(index.shape)}")
