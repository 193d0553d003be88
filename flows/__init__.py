"""Prefect flows: one module per pipeline; a flow wires tasks and publishes artifacts."""
