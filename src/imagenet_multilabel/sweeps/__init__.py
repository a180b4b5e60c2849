"""Sweeps: many models x datasets in one command, gathered into one leaderboard.

- :mod:`.launch`: what ``evaluate.py`` does to its command line first (``model.names=``
  lists, files and timm patterns; ``resume=``);
- :mod:`.dirs`: one job directory per set of overrides (``hydra.sweep.subdir``);
- :mod:`.jobs`: the task of a sweep job: skip complete jobs, rescore from saved predictions,
  record failures and go on;
- :mod:`.gather`, :mod:`.table`, :mod:`.published`: run folders -> leaderboard.csv / .md /
  .json with timm's published numbers beside ours;
- :mod:`.figures`: the paper's figures; :mod:`.testbed`: the ImageNet-testbed picture
  (each variant against ImageNet val, logit axes, effective robustness); :mod:`.report`:
  tables and figures together;
- :mod:`.callback`: the Hydra callback that writes them at the end of a multirun
  (``python -m imagenet_multilabel report`` on demand).

See docs/sweeps.md.
"""
