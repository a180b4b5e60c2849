"""The gallery: one static page of a finished run that shows where single-label top-1
misjudges the model (right, but scored wrong) and where it really errs (confidently wrong,
missed second objects, images no label fits, composites' tiles).

    python -m imagenet_multilabel gallery run_dir=outputs/evaluate/<run>

Modules: ``options`` (the ``gallery:`` config node), ``selection`` (which images, numpy),
``samples`` (what is shown of each), ``thumbnails``, ``page`` (the HTML), ``build`` (the
task), ``wandb_table`` (the same samples as a W&B table).
"""

from imagenet_multilabel.reports.gallery.build import gallery_rows, write_gallery

__all__ = ["gallery_rows", "write_gallery"]
