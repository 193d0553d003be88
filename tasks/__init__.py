"""Prefect tasks and task-side helpers: thin orchestration policy over the gpuflows core."""
