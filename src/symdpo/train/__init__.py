"""Training: losses, recipes (SFT, DPO) and checkpointing."""
