"""Prefect blocks of gpuflows: thin, UI-editable settings that convert to core objects.

Register them with ``prefect block register -m blocks``. Each block keeps its rules in the
Prefect-free core package (``gpuflows``) and converts to a core object where it is used.
"""

from blocks.data_source import DataSource
from blocks.gpu_pool import GpuPool
from blocks.model_source import ModelSource
from blocks.slo_policy import SloPolicyBlock
from blocks.trust_policy import TrustPolicyBlock

__all__ = ["DataSource", "GpuPool", "ModelSource", "SloPolicyBlock", "TrustPolicyBlock"]
