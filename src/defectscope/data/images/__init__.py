"""Image-level labels and masks: manifests, importers, splits, summaries, synthetic defects."""
