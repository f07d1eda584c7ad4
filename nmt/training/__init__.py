"""Training: the loop, the translation and LM trainers, their configs, checkpoints
and multi-process (DDP) helpers."""
