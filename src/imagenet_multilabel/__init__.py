"""imagenet-multilabel: evaluate ImageNet classifiers without the single-label assumption."""

__version__ = "0.1.0"
