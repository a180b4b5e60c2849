"""Sweeps: many models x datasets in one command, gathered into one leaderboard.

- :mod:`.launch`: what ``evaluate.py`` does to its command line first (``model.names=``
  lists, files and timm patterns; ``resume=``);
- :mod:`.dirs`: one job directory per set of overrides (``hydra.sweep.subdir``);
- :mod:`.job`: the task of a sweep job: skip complete jobs, rescore from saved predictions,
  record failures and go on;
- :mod:`.callback`: the Hydra callback that writes the leaderboard and figures at the end
  of a multirun (``reports/write.py``; ``python -m imagenet_multilabel report`` on demand).

See docs/sweeps.md.
"""
