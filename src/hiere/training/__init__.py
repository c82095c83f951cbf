"""One trainer for every model (single process and DDP), checkpoints, inference loop."""
