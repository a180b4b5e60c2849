"""The names a fine-tuning config chooses from (no torch here: the config check reads them
before anything heavy is imported)."""

# the held-out sets of a fine-tuning run (training/fit_sets.py builds those the split gives)
FIT_SET_NAMES = ("heldout_seen", "train_recombined", "heldout_classes", "single_photos")
# what each set measures, said wherever its numbers are shown: photos that were trained on
# measure fitting, never a gain
FIT_SET_MEASURES = {
    "heldout_seen": "held-out photos of trained classes",
    "train_recombined": "new pairs of training photos: trained on, not a gain",
    "heldout_classes": "photos of classes never trained on",
    "single_photos": "every photo alone, training photos included: not a gain",
}
FIT_STAGES = ("pretrained", "finetuned", "delta")  # metrics.json: <set>/<stage>.<metric>
FINETUNE_MODES = ("head", "last_n", "full")
