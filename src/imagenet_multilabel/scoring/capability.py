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
  was scored exactly once; the states are then preallocated (this rank's share), so that
  ``compute()`` scores them without joining the batches.

``compute()`` is collective under DDP (every rank calls it, every rank gets the same dict,
a new one each call). A ``compute()`` that raises (an image missing, an index given twice,
non-finite logits) leaves the metric as it was: ``reset()`` or more updates work, also under
DDP. Calling the metric (``metric(logits, ...)``) only updates it and returns None: metrics
of a single batch mean little (ASMA, mAP, subgroups).

Checks and dtypes: ``update`` refuses what cannot be scored, in one line (``ValueError``):
shapes, float ``logits``, integer ``target`` in ``0..num_classes-1``, ``valid`` bool or
0/1 integers, integer ``index`` from 0 (``validate_args=False`` skips the checks of values,
which read them back from a GPU). The logits are kept in float32, as ``evaluate.py`` keeps
them: float16/bfloat16 logits exactly, float64 logits rounded to float32 (the metrics are
computed in float32 and float64 as the evaluation does). The states keep their dtypes
whatever ``set_dtype()``, ``.half()`` or ``.to(dtype)`` ask (only a device move applies).
Logits that hold inf or NaN are refused at ``compute()`` (``nonfinite_logits="error"``; a
:class:`~imagenet_multilabel.scoring.scorer.NonFiniteLogitsError` names the images) or
scored as they are and counted in ``num_nonfinite`` (``nonfinite_logits="score"``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric

from imagenet_multilabel.core.runtime import one_torch_thread
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


def capability_scorer(
    heads: HeadsArg = "default", *, nonfinite_logits: str = "error", **options
) -> Scorer:
    """The :class:`Scorer` of the head config these arguments name, as
    ``builders.build_scorer`` makes it from conf/head.

    ``heads``: ``"default"`` (``single`` + ``multilabel``, the latter skipped without
    valid labels: conf/head/default.yaml), ``"single"``, ``"multilabel"`` (conf/head/*.yaml),
    a sequence of those names, or a mapping name -> :class:`Head` or :class:`HeadSpec` (any
    head; no options then). ``options``: the arguments of the named heads' classes, each
    given to the heads that take it: :class:`MultiLabelHead`'s ``mode``, ``scores``, ``k``,
    ``threshold``, ``mass``, ``min_subgroup_size``, ``confidences`` (``head.multilabel.<arg>=``
    in a run) and both heads' ``ece_bins``. ``nonfinite_logits``: ``"error"`` or
    ``"score"`` (:class:`Scorer`; the run option ``nonfinite_logits=``).
    """
    unknown = sorted(set(options) - HEAD_OPTIONS)
    if unknown:
        known = ", ".join(sorted(HEAD_OPTIONS))
        raise TypeError(f"unknown head option {unknown[0]!r}: use {known}")
    if isinstance(heads, Mapping):
        if options:
            raise TypeError("head options go with named heads, not with Head objects")
        specs = {n: h if isinstance(h, HeadSpec) else HeadSpec(h) for n, h in heads.items()}
        return Scorer(specs, nonfinite_logits)
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
    return Scorer(specs, nonfinite_logits)


def multilabel_capability(
    logits: Tensor,
    target: Tensor,
    valid: Tensor | None,
    heads: HeadsArg = "default",
    *,
    class_subset: Sequence[int] | None = None,
    nonfinite_logits: str = "error",
    **head_options,
) -> dict[str, float]:
    """The metrics of one whole dataset (all its images, in dataset order), as
    ``evaluate.py`` writes them to metrics.json for it (without the ``<dataset>/``
    prefix). Inputs: see :mod:`this module <imagenet_multilabel.scoring.capability>`;
    ``heads`` and ``head_options``: see :func:`capability_scorer`; ``class_subset``: the
    classes the dataset is scored on (e.g. ImageNet-A's 200), the others' logits excluded;
    ``nonfinite_logits``: refuse (``"error"``) or score (``"score"``) inf/NaN logits.
    """
    _check_inputs(logits, target, valid, None, logits.shape[-1] if logits.ndim else 0)
    scorer = capability_scorer(heads, nonfinite_logits=nonfinite_logits, **head_options)
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
        dataset_size: the number of images; checks that each was scored exactly once, and
            preallocates the states (compute() then joins no batches).
            Required under DDP when no ``index`` is given.
        class_subset: the classes the dataset is scored on (others' logits excluded).
        nonfinite_logits: ``"error"`` (default): ``compute()`` refuses logits that hold inf
            or NaN; ``"score"``: scores them, ``num_nonfinite`` counts them.
        validate_args: check the values of the inputs at ``update`` (their shapes and dtypes
            are always checked).
        **kwargs: the heads' options (``mode``, ``scores``, ``k``, ``threshold``, ``mass``,
            ``min_subgroup_size``, ``ece_bins``, ``confidences``: :func:`capability_scorer`)
            and torchmetrics ``Metric`` options (``process_group``, ...).
    """

    # torch.jit.script compiles a module's properties; this one reads the list states
    __jit_unused_properties__: ClassVar[list[str]] = [
        *Metric.__jit_unused_properties__,
        "_seen",
    ]

    def __init__(
        self,
        heads: HeadsArg = "default",
        *,
        with_valid: bool = True,
        num_classes: int = IMAGENET_CLASSES,
        dataset_size: int | None = None,
        class_subset: Sequence[int] | None = None,
        nonfinite_logits: str = "error",
        validate_args: bool = True,
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
        self.validate_args = validate_args
        self.scorer = capability_scorer(heads, nonfinite_logits=nonfinite_logits, **head_options)
        self.scorer.check_labels({"data": with_valid})  # a head that needs labels, without
        self._indexed: bool | None = None  # whether the updates give an index

    @property
    def _seen(self) -> int:
        """Images of this rank so far (the implicit index): the rows of the states, so that
        it follows ``load_state_dict`` and ``merge_state``."""
        if isinstance(self.index, Tensor):  # synced
            return int(self.index.shape[0])
        return sum(int(i.shape[0]) for i in self.index)

    def _wrap_compute(self, compute: Callable) -> Callable:
        # the metrics are Python numbers: nothing for PredictionBuffer to give a shape back
        wrapped = Metric._wrap_compute(self, compute)

        @functools.wraps(wrapped)
        def fresh(*args, **kwargs) -> dict[str, float]:
            try:
                return dict(wrapped(*args, **kwargs))  # a caller's edits stay in its copy
            except BaseException:
                # torchmetrics' sync_context restores the rank's own states only when
                # compute() returns: after an error, the metric would stay synced (its
                # states the gathered tensors) and refuse updates, compute() and reset()
                if self._is_synced:
                    self.unsync()
                raise

        return fresh

    @torch.jit.unused  # as torchmetrics marks Metric.forward: *args cannot be scripted
    def forward(self, *args, **kwargs) -> None:
        """Updates only (see the module's docstring): the metrics come from ``compute()``."""
        self.update(*args, **kwargs)

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> Any:
        # the states move with the module's device but keep their dtypes: float32 logits,
        # int64 index and target, uint8 valid (set_dtype, .half() or .to(dtype) would turn
        # the index into floats and round the logits)
        states = tuple(self._defaults)
        this = super()._apply(fn, exclude_state=(*exclude_state, *states))

        def move(t: Tensor) -> Tensor:
            return t.to(fn(torch.zeros(0, device=t.device)).device)

        for key in states:
            if key in exclude_state:
                continue
            value = getattr(this, key)
            moved = move(value) if isinstance(value, Tensor) else [move(v) for v in value]
            setattr(this, key, moved)
            default = this._defaults[key]
            this._defaults[key] = move(default) if isinstance(default, Tensor) else default
        return this

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """Adds another metric's images (or a ``metric_state`` dict) to this one's. With
        ``index``: the images keep their indices (an index in both must be the same image).
        Without: in one process, the incoming images come after this metric's (its image
        ``j`` becomes image ``seen + j``); under DDP, merge metrics updated with index."""
        if isinstance(incoming_state, MultiLabelCapability):
            indexed = incoming_state._indexed
            incoming_state = incoming_state.metric_state
        else:
            indexed = None
        if indexed is not None and self._indexed is not None and indexed != self._indexed:
            raise ValueError("merge_state: one metric was given index, the other not")
        indexed = self._indexed if indexed is None else indexed
        if indexed is False and self._seen:
            if self._rank_and_world()[1] > 1:
                raise ValueError(
                    "merge_state under DDP needs metrics updated with index= (without it, "
                    "each numbers its images from 0 on every rank)"
                )
            offset = self._seen
            incoming_state = {
                **incoming_state,
                "index": [i + offset for i in incoming_state["index"]],
            }
        super().merge_state(incoming_state)
        self._indexed = indexed

    # update runs small torch ops and copies: on one torch thread, as the scorer does
    # (core/runtime.py; 100 updates of 500 x 1000 logits with dataset_size took 1.3 CPU-s
    # on two OpenMP threads of the busy 2-core machine, 0.23 on one). compute() leaves the
    # thread count to the scorer (its passes over all logits use every thread).
    @one_torch_thread()
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
        _check_inputs(logits, target, valid, index, self.num_classes, self.validate_args)
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
        super().update(index.to(target.device), logits, target, _bool(valid))

    def reset(self) -> None:
        super().reset()
        self._indexed = None

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
                world = self._rank_and_world()[1]
                padded = -(-n // world) * world  # what DistributedSampler deals at most
                if index.numel() and int(index.max()) >= padded:
                    raise RuntimeError(
                        f"scored images up to position {int(index.max())} for "
                        f"dataset_size={n}: more images than the dataset holds"
                    )
                keep = keep & (index < n)
            kept = index[keep]
            if kept.numel() != n or not torch.equal(kept, torch.arange(n, device=kept.device)):
                raise RuntimeError(
                    f"scored {kept.numel()} distinct images with indices {_span(kept)} for "
                    f"dataset_size={n}: every image of 0..{n - 1} must be scored (a partial "
                    "pass such as Lightning's sanity check: skip compute() while "
                    "trainer.sanity_checking, or give index= and no dataset_size)"
                )
        if bool(keep.all()):  # each image once: no copy
            return Predictions(logits=logits, target=target, valid=valid)
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
    logits: Tensor,
    target: Tensor,
    valid: Tensor | None,
    index: Tensor | None,
    classes: int,
    check_values: bool = True,
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
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point (the raw outputs), got {logits.dtype}")
    if not _is_integer(target):
        raise ValueError(
            f"target must hold integer class indices (int64), got {target.dtype}: a float "
            "target would be truncated"
        )
    if index is not None and not _is_integer(index):
        raise ValueError(f"index must hold integer positions (int64), got {index.dtype}")
    if valid is not None and valid.is_complex():
        raise ValueError(f"valid must be bool (or 0/1), got {valid.dtype}")
    if not check_values or n == 0:
        return
    low, high = int(target.min()), int(target.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise ValueError(
            f"target holds {bad}, outside the classes 0..{classes - 1}: every image needs its "
            "class (no ignore index such as -100; leave such images out)"
        )
    if valid is not None and valid.dtype != torch.bool:
        outside = (valid != 0) & (valid != 1)
        if bool(outside.any()):
            value = valid[outside][0].item()
            raise ValueError(
                f"valid must be bool or 0/1, got a {value} ({valid.dtype}): soft labels or "
                "-1 for 'unknown' are not valid labels; give an all-false row to an image "
                "without a label set"
            )
    if index is not None and int(index.min()) < 0:
        raise ValueError(f"index holds {int(index.min())}: positions start at 0")


def _is_integer(t: Tensor) -> bool:
    return not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)
