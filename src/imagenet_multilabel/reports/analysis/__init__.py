"""Cross-dataset analysis: label-count distributions, gaps and reweighting."""
