"""The names a fine-tuning config chooses from (no torch here: the config check reads them
before anything heavy is imported)."""

# the held-out sets of a fine-tuning run (training/sets.py builds those the split gives)
FIT_SET_NAMES = ("heldout_seen", "train_recombined", "heldout_classes", "single_photos")
FIT_STAGES = ("pretrained", "finetuned", "delta")  # metrics.json: <set>/<stage>.<metric>
FINETUNE_MODES = ("head", "last_n", "full")
