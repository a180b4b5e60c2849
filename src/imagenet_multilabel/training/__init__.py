"""Fine-tuning: losses, what is trained, the training and held-out sets, cached features."""
