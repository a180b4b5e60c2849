"""Sweeps: many models x datasets in one command, gathered into one leaderboard.

- :mod:`.launch`: what ``evaluate.py`` does to its command line first (``model.names=``
  lists, files and timm patterns; ``resume=``);
- :mod:`.dirs`: one job directory per set of overrides (``hydra.sweep.subdir``);
- :mod:`.jobs`: the task of a sweep job: skip complete jobs, rescore from saved predictions,
  record failures and go on;
- :mod:`.gather`, :mod:`.table`, :mod:`.published`, :mod:`.figures`: finished runs ->
  leaderboard.csv / .md / .json with timm's published numbers, and the paper's figures;
- :mod:`.callback`: the Hydra callback that writes the leaderboard at the end of a multirun.
"""
