"""gpu_baseline."""
