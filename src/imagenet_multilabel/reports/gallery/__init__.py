"""The gallery: one static page of a finished run that shows where single-label top-1
misjudges the model (right, but scored wrong) and where it really errs (confidently wrong,
missed second objects, images no label fits, composites' tiles).

    python -m imagenet_multilabel gallery run_dir=outputs/evaluate/<run>

Modules: ``options`` (the ``gallery:`` config node and its check), ``selection`` (which
images, numpy), ``samples`` (what is shown of each), ``page`` (the HTML), ``build`` (the
task); the photos, thumbnails and exemplars it shows come from ``reports/images/``, which
propose's review page and W&B share. ``options`` imports nothing heavy: the config check
reads it before torch.
"""
