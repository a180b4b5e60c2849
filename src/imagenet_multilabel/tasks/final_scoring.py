"""The end of a fine-tuning run: the best checkpoint's logits of every held-out set, scored
as evaluate.py scores them (or the classifier on cached features), compared with the
pretrained model's, and printed; weights or logits that are not finite end the run before
anything is written; which images each fine-tuned result counted, for metrics.json (as
evaluate.py records it: runs/image_sets.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from imagenet_multilabel.builders import build_datamodule
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.data.loading.settings import LoaderSettings
from imagenet_multilabel.lit.evaluation import EvaluationModule
from imagenet_multilabel.models.backbones import Backbone
from imagenet_multilabel.runs.image_sets import scored_image_set
from imagenet_multilabel.runs.summary import print_summary
from imagenet_multilabel.scoring.metrics.buffer import Predictions
from imagenet_multilabel.scoring.metrics.names import is_count
from imagenet_multilabel.scoring.scorer import Scorer
from imagenet_multilabel.training.choices import FIT_SET_MEASURES, FIT_STAGES
from imagenet_multilabel.training.fit import Extracted
from imagenet_multilabel.training.fit_sets import FitSets

STAGES = FIT_STAGES


def finite_weights_or_raise(model: torch.nn.Module, when: str) -> None:
    """Weights that became NaN or infinite (a step too large) end the run before anything
    is evaluated or written."""
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise UserError(
                f"the weights are not finite {when} ({name} holds NaN or inf): nothing was "
                "written; lower optim.lr or set trainer.gradient_clip_val=1.0"
            )


def finite_logits_or_raise(preds: dict[str, Predictions], source: Path) -> None:
    for name, p in preds.items():
        if not bool(torch.isfinite(p.logits).all()):
            raise UserError(
                f"the fine-tuned logits of {name} are not finite (weights of {source}): "
                "nothing was written; lower optim.lr or set trainer.gradient_clip_val=1.0"
            )


def final_evaluation(
    cfg: DictConfig,
    trainer: L.Trainer,
    backbone: Backbone,
    scorer: Scorer,
    sets: FitSets,
    extracted: Extracted | None,
    loader: LoaderSettings,
    common: dict,
) -> dict[str, tuple[dict[str, float], Predictions]]:
    """Fine-tuned metrics and logits of every held-out set, scored once: over the images
    through the evaluation module, which scores them as evaluate.py does (what
    ``evaluate.py model.checkpoint=<best.ckpt>`` reproduces), or with
    ``final_eval=features`` the classifier on the cached features."""
    if cfg.final_eval == "features":
        classifier = backbone.model.get_classifier()
        results = {}
        for n in sets.evals:
            features, pre = extracted[n]
            with torch.no_grad():
                preds = Predictions(classifier(features), pre.target, pre.valid)
            results[n] = (scorer.score(n, preds.logits, preds.target, preds.valid), preds)
        return results
    module = EvaluationModule(
        backbone.model,
        scorer,
        {name: len(s.dataset) for name, s in sets.evals.items()},
        with_valid={name for name, s in sets.evals.items() if s.valid is not None},
        **common,
    )
    try:
        trainer.validate(
            module,
            datamodule=build_datamodule(cfg, loader, sets.evals),
            verbose=False,
        )
    finally:
        module.release()
    return dict(module.results)


def compare(
    scorer: Scorer,
    sets: FitSets,
    pretrained: dict[str, Predictions],
    finetuned: dict[str, tuple[dict[str, float], Predictions]],
) -> dict[str, dict[str, float]]:
    """Per set: every metric pretrained (scored here) and fine-tuned (as
    :func:`final_evaluation` scored them), and their difference."""
    per_set: dict[str, dict[str, float]] = {}
    for name in sets.evals:
        pre = scorer.score(
            name, pretrained[name].logits, pretrained[name].target, pretrained[name].valid
        )
        ft = finetuned[name][0]
        row = {f"pretrained.{k}": v for k, v in pre.items()}
        row.update({f"finetuned.{k}": v for k, v in ft.items()})
        row.update({f"delta.{k}": ft[k] - v for k, v in pre.items() if not is_count(k) and k in ft})
        per_set[name] = row
    return per_set


def with_image_sets(
    per_set: dict[str, dict[str, float]],
    sets: FitSets,
    finetuned: dict[str, tuple[dict[str, float], Predictions]],
) -> dict[str, dict[str, Any]]:
    """``per_set`` and, per set, ``num_distinct_images`` and ``images_sha256`` of the images
    its fine-tuned result counted (the gathered indices; logits of cached features have
    none and are every image in dataset order, as predictions/ writes them)."""
    out: dict[str, dict[str, Any]] = {}
    for name, row in per_set.items():
        preds = finetuned[name][1]
        index = preds.index if preds.index is not None else range(len(preds))
        out[name] = {**row, **scored_image_set(sets.evals[name].dataset.files, index)}
    return out


def split_stages(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """``{"pretrained.top1": ...}`` -> ``{"pretrained": {"top1": ...}, ...}``."""
    out: dict[str, dict[str, float]] = {s: {} for s in STAGES}
    for key, value in metrics.items():
        stage, _, metric = key.partition(".")
        out[stage][metric] = value
    return out


def print_comparison(per_set: dict[str, dict[str, float]], cfg: DictConfig, steps: int) -> None:
    for name, metrics in per_set.items():
        stages = split_stages(metrics)
        print_summary(
            {
                "pretrained": stages["pretrained"],
                "fine-tuned": stages["finetuned"],
                "Δ": stages["delta"],
            },
            title=f"{name} ({FIT_SET_MEASURES.get(name, name)}): {cfg.model.name} "
            f"({cfg.finetune.mode}, {cfg.loss.name}, {steps} steps)",
        )
