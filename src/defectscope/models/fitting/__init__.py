"""The training loops, beside the networks they train (below the models, above torch)."""
