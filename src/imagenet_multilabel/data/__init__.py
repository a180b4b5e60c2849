"""Image datasets, label sets, transforms and the evaluation DataModule."""
