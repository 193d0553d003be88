"""gpuflows core: the Prefect-free compute behind the flows.

Everything in this package imports without Prefect and without CUDA; GPU libraries are probed
lazily (``importlib.util.find_spec``) so a CPU-only machine never loads them.
"""

__version__ = "0.1.0"
