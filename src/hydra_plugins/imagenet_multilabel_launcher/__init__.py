"""Hydra launchers of imagenet_multilabel (Hydra finds launchers in ``hydra_plugins``)."""
