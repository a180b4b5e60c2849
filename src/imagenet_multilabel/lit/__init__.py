"""LightningModules: evaluation and fine-tuning."""
