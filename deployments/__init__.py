"""Operating gpuflows on Prefect: work pool, VRAM limits, blocks, deployments and workers.

* ``python -m deployments.setup``: everything against ``PREFECT_API_URL``, idempotently.
* ``python -m deployments.check_yaml``: check ``prefect.yaml`` without a server.
* ``python -m deployments.local_server``: a loopback ``prefect server start`` for tests and benches.
"""
