"""Checks a task runs before anything slow (model creation, weight requests, dataset
scans): config values, the model's name and class count, the output folder. Each failure
is one :class:`~.errors.UserError` line that says what to change."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import ModelError, UserError

LOGITS_DTYPES = ("float32", "float16")
CROP_MODES = ("center", "squash", "border")  # timm's eval transform
# on/off settings of conf/evaluate.yaml: a typo ("yes", "maybe") would be truthy
SWITCHES = ("channels_last", "normalize_on_device", "compile", "keep_freed_memory", "pin_memory")


def _int(cfg: Mapping[str, Any], key: str, low: int, what: str, allow_none: bool = False) -> None:
    value = cfg.get(key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{key}={value!r} is not valid: {what}")


def check_run_settings(cfg: DictConfig) -> None:
    """Loader, thread, preprocessing and output settings of an evaluation-like task."""
    _int(cfg, "batch_size", 1, "give a whole number of images per batch, >= 1", allow_none=True)
    _int(cfg, "num_workers", 0, "give 0 (decode in the main process) or more", allow_none=True)
    _int(cfg, "cpu_threads", 1, "give null (auto) or a number >= 1", allow_none=True)
    _int(cfg, "prefetch_factor", 1, "give null or a number >= 1", allow_none=True)
    if cfg.get("cpu_parallel", "batches") not in ("batches", "ops"):
        raise UserError(f"cpu_parallel must be 'batches' or 'ops', got {cfg.cpu_parallel!r}")
    dtype = str(cfg.get("predictions", {}).get("logits_dtype", "float32"))
    if dtype not in LOGITS_DTYPES:
        raise UserError(
            f"predictions.logits_dtype={dtype!r} is not supported: use float32 (exact "
            "re-scoring) or float16 (half the size)"
        )
    _int(cfg, "seed", 0, "give a whole number in 0..4294967295", allow_none=True)
    if (cfg.get("seed") or 0) > 2**32 - 1:
        raise UserError(f"seed={cfg.seed} is not valid: give a whole number in 0..4294967295")
    for key in SWITCHES:
        value = cfg.get(key)
        if value is not None and not isinstance(value, bool):
            raise UserError(f"{key}={value!r} is not valid: give true or false")
    check_preprocess(cfg.get("preprocess") or {})
    if cfg.get("data") is not None:
        check_data_roots(cfg.data)

    check_labels_option(cfg.get("labels"))
    if cfg.get("trainer") is not None:
        check_trainer(cfg.trainer)
    if cfg.get("gallery") not in (None, False):  # what the run writes at its end
        from .gallery.options import gallery_options

        options = gallery_options(cfg.gallery)
        if options.output_dir is not None:
            check_can_create(options.output_dir, "gallery.output_dir")
        folder = options.exemplars
        if isinstance(folder, Path) and not folder.is_dir():  # its images are read at the end
            what = "does not exist" if not folder.exists() else "is a file"
            raise UserError(
                f"gallery.exemplars={folder} {what}: point it at a folder of photos, or use "
                "gallery.exemplars=run (other photos of the run) or none"
            )
    name = cfg.get("optimized_metric")
    if name is not None and (not isinstance(name, str) or name.count("/") != 1):
        raise UserError(
            f"optimized_metric={name!r} is not a metric name: give <dataset>/<metric>, "
            "e.g. demo/top1"
        )


def check_labels_option(labels: Mapping[str, Any] | None) -> None:
    """A ``labels`` option has its mandatory values (``???`` in conf/labels, e.g. the
    file of labels=file); a null ``path`` is the shipped copy (labels=real, multilabelfy)."""
    if labels is None:
        return
    missing = [str(k) for k in labels if _is_missing(labels, k)]
    if missing:
        key = missing[0]
        value = "/path/to/labels" if key == "path" else "..."
        name = labels.get("name")
        raise UserError(f"labels={name} needs labels.{key}: pass labels.{key}={value}")


def _is_missing(node: Mapping[str, Any], key: Any) -> bool:
    if isinstance(node, DictConfig):
        return OmegaConf.is_missing(node, key)
    return node.get(key) == "???"


def _declares(node: DictConfig, key: str) -> bool:
    """``key`` is in ``node``, also with the missing value ``???`` (for which ``in`` is False)."""
    return key in node or OmegaConf.is_missing(node, key)


def check_data_roots(data: DictConfig) -> None:
    """Every dataset that needs a folder has one that exists (a file is not a folder), and
    a named variant (ImageNetV2's) is one there is."""
    from .config import dataset_specs
    from .data.variants import check_imagenetv2_variant

    for key, spec in dataset_specs(data).items():
        if str(spec.get("_target_", "")).endswith(".ImageNetV2Dataset"):
            check_imagenetv2_variant(spec.get("variant", "matched-frequency"))
        if not _declares(spec, "root"):
            continue
        option = "data" if key == "data" else f"data.{key}"
        if OmegaConf.is_missing(spec, "root") or spec.root in (None, ""):
            if OmegaConf.is_missing(spec, "root"):
                howto = spec.get("howto") or "a folder of images"
                raise UserError(f"no dataset folder given: pass {option}.root=... ({howto})")
            continue  # null: the dataset's own default (e.g. the demo photos)
        root = Path(str(spec.root)).expanduser()
        if root.exists() and not root.is_dir():
            raise UserError(
                f"{option}.root={root} is a file, not a folder: pass the folder of images"
            )
        if not root.exists():
            raise UserError(f"dataset folder {root} does not exist: check {option}.root")


def check_preprocess(pre: Mapping[str, Any]) -> None:
    """``preprocess.*`` overrides: sizes positive, crop_pct in (0, 1], known interpolation."""
    size = pre.get("img_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise UserError(f"preprocess.img_size={size!r} must be a positive number of pixels")
    shape = pre.get("input_size")
    if shape is not None and (
        len(shape) != 3 or any(not isinstance(v, int) or v < 1 for v in shape) or shape[0] != 3
    ):
        raise UserError(f"preprocess.input_size={list(shape)!r} must be [3, height, width]")
    crop = pre.get("crop_pct")
    if crop is not None and not (isinstance(crop, (int, float)) and 0 < crop <= 1):
        raise UserError(f"preprocess.crop_pct={crop!r} must be in (0, 1]")
    crop_mode = pre.get("crop_mode")
    if crop_mode is not None and crop_mode not in CROP_MODES:
        raise UserError(
            f"preprocess.crop_mode={crop_mode!r} is unknown: use {', '.join(CROP_MODES)}"
        )
    mode = pre.get("interpolation")
    if mode is not None and mode not in (
        "bilinear",
        "bicubic",
        "nearest",
        "lanczos",
        "box",
        "hamming",
    ):
        raise UserError(
            f"preprocess.interpolation={mode!r} is unknown: use bilinear, bicubic, nearest, "
            "lanczos, box or hamming"
        )
    for key in ("mean", "std"):
        values = pre.get(key)
        if values is not None and len(values) != 3:
            raise UserError(f"preprocess.{key} needs 3 values (R, G, B), got {list(values)!r}")
    if pre.get("std") is not None and any(v <= 0 for v in pre["std"]):
        raise UserError("preprocess.std values must be positive")
    hflip = pre.get("hflip")
    if hflip is not None and not isinstance(hflip, bool):
        raise UserError(f"preprocess.hflip={hflip!r} must be true or false")


def _precisions() -> set[str]:
    """The precision values Lightning accepts (as strings), or empty if it hides them."""
    import typing

    try:
        from lightning.fabric.connector import _PRECISION_INPUT
    except ImportError:  # pragma: no cover - another Lightning version
        return set()

    def values(tp: Any) -> list[Any]:
        args = typing.get_args(tp)
        if typing.get_origin(tp) is typing.Literal:
            return list(args)
        return [v for a in args for v in values(a)]

    return {str(v) for v in values(_PRECISION_INPUT)}


def _has_accelerator(name: str) -> bool:
    from lightning.pytorch.accelerators import AcceleratorRegistry

    name = "cuda" if name == "gpu" else name
    if name not in AcceleratorRegistry:
        return False
    return bool(AcceleratorRegistry[name]["accelerator"].is_available())


def check_trainer(trainer: Mapping[str, Any]) -> None:
    """``trainer.accelerator`` exists on this machine, ``devices`` and ``precision`` are
    values Lightning takes (its own errors of them are tracebacks)."""
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator != "auto":
        from lightning.pytorch.accelerators import AcceleratorRegistry

        known = ["gpu", *AcceleratorRegistry.available_accelerators()]
        if accelerator not in known:
            raise UserError(
                f"trainer.accelerator={accelerator!r} is unknown: use auto, cpu, gpu or "
                f"{', '.join(k for k in known if k not in ('cpu', 'gpu'))}"
            )
        if not _has_accelerator(accelerator):
            raise UserError(
                f"trainer.accelerator={accelerator} but this machine has no usable "
                f"{accelerator.upper()}: use trainer=cpu (or trainer.accelerator=auto)"
            )
    devices = trainer.get("devices", "auto")
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, bool) or (
        not isinstance(devices, (int, str)) and not _is_int_list(devices)
    ):
        raise UserError(f"trainer.devices={devices!r} is not valid: give a number >= 1 or auto")
    if isinstance(devices, int) and (devices == 0 or devices < -1):
        raise UserError(
            f"trainer.devices={devices} is not valid: give the number of devices (>= 1), -1 "
            "(all) or auto"
        )
    if isinstance(devices, str) and devices != "auto" and not _is_int_list(devices.split(",")):
        raise UserError(f"trainer.devices={devices!r} is not valid: give a number >= 1 or auto")
    precision = trainer.get("precision")
    allowed = _precisions()
    if precision is not None and allowed and str(precision) not in allowed:
        raise UserError(
            f"trainer.precision={precision!r} is unknown: use 32-true, 16-mixed, bf16-mixed, "
            "16-true, bf16-true or 64-true"
        )
    on_cpu = accelerator == "cpu" or (
        accelerator == "auto" and not any(_has_accelerator(a) for a in ("cuda", "mps", "tpu"))
    )
    if on_cpu and str(precision) in ("16-mixed", "16"):
        # Lightning then runs bf16-mixed, while the run records 16-mixed
        raise UserError(
            f"trainer.precision={precision} (float16 autocast) needs a GPU: on CPU use "
            "bf16-mixed or 32-true"
        )


def _is_int_list(values: Any) -> bool:
    try:
        items = list(values)
    except TypeError:
        return False
    return bool(items) and all(
        (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
        or (isinstance(v, str) and v.strip().isdigit())
        for v in items
    )


def check_model(model: Mapping[str, Any]) -> None:
    """The model name resolves in timm and predicts the 1000 ImageNet-1k classes, before
    the model is created or any weights are requested."""
    from timm.models import get_pretrained_cfg

    from .classes import NUM_CLASSES
    from .models.backbones import check_model_name

    name = str(model.get("name"))
    check_model_name(name)
    kwargs = model.get("kwargs") or {}
    classes = kwargs.get("num_classes")
    if classes is None:
        try:
            pretrained = get_pretrained_cfg(name)
        except RuntimeError as e:  # an unknown tag
            raise ModelError(
                f"{e} Pick a tag of timm.list_pretrained('{name.split('.')[0]}*')"
            ) from None
        classes = pretrained.num_classes if pretrained is not None else NUM_CLASSES
    if classes != NUM_CLASSES:
        raise ModelError(
            f"model {name} predicts {classes} classes, but the datasets and label sets here "
            f"are ImageNet-1k ({NUM_CLASSES} classes): choose a model (or tag) trained on "
            "ImageNet-1k"
        )


def check_input_sizes(
    model: Any, preprocessing: Mapping[str, Any], datasets: Mapping[str, Any]
) -> None:
    """Every dataset's images fit the model, before the run: a timm model whose input size
    is fixed (a ViT's patch embedding without ``dynamic_img_size``) takes exactly that size,
    but composites put tiles side by side and ``preprocess.img_size`` may differ (the forward
    pass would fail with an AssertionError traceback). ``datasets``: name -> dataset; one
    with ``image_size(tile)`` says its image shape for the model's input shape."""
    embed = getattr(model, "patch_embed", None)
    fixed = getattr(embed, "img_size", None) if getattr(embed, "strict_img_size", False) else None
    if fixed is None:
        return
    fixed = tuple(int(v) for v in fixed)
    tile = tuple(int(v) for v in preprocessing["input_size"])
    for name, dataset in datasets.items():
        size = tuple(dataset.image_size(tile)) if hasattr(dataset, "image_size") else tile
        if size[1:] == fixed:
            continue
        other = (
            "data.squeeze=true (downscaled tiles)"
            if size != tile
            else "preprocess.img_size / input_size at the model's"
        )
        raise UserError(
            f"the model takes {fixed[0]}x{fixed[1]} images only, but dataset '{name}' has "
            f"{size[1]}x{size[2]}: pass model.kwargs.dynamic_img_size=true (timm ViTs), or "
            f"{other}"
        )


def check_can_create(path: str | Path, setting: str) -> None:
    """``path`` is a folder, or can be made one, that this user can write (checked without
    creating anything: its nearest existing ancestor is a writable folder)."""
    import os

    path = Path(path).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing == path and not path.is_dir():
        raise UserError(f"{setting}={path} is a file: pass a folder")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{setting}={path} cannot be written here: choose another folder")


def check_output_dir(path: str | Path) -> Path:
    """The run folder exists and can be written (before any work is done)."""
    import os
    import tempfile

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(
            f"cannot write the run folder {path} ({e.strerror}): choose another with "
            "hydra.run.dir=..."
        ) from None
    return path


def check_optimized_metric_name(
    name: str | None, datasets: Mapping[str, bool], single: set[str], multi: set[str]
) -> None:
    """Before a run works: ``optimized_metric`` names one of the metrics it will write,
    given its datasets (name -> has a label set) and the metric names the heads write
    without and with a label set (sweeps.jobs.expected_metric_names)."""
    if not name:
        return
    expected = {
        f"{dataset}/{m}"
        for dataset, labelled in datasets.items()
        for m in (multi if labelled else single)
    }
    if name not in expected:
        example = next(iter(sorted(expected)), "-")
        raise UserError(
            f"optimized_metric={name!r} is not among the metrics this run writes (e.g. {example!r})"
        )


def check_optimized_metric(metrics: Mapping[str, float], name: str | None) -> None:
    """``optimized_metric`` names one of the run's metrics (checked before results are
    written; the entry point then returns that value to Hydra's sweepers)."""
    if name and name not in metrics:
        example = next(iter(metrics), "-")
        raise UserError(
            f"optimized_metric={name!r} is not among this run's metrics (e.g. {example!r})"
        )
