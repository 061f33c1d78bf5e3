"""equiv.train: training loops, metrics, checkpoints, distributed support."""
