"""Parameters of the ``gpu-baseline`` flow: the form in the Prefect UI, validated before any
measurement."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GpuBaselineParams(BaseModel):
    """Parameters of ``gpu-baseline`` (the form in the Prefect UI). Unknown names are errors."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="'auto' (first GPU, else CPU), 'cpu', 'cuda' or 'cuda:N'.",
    )
    repeats: int = Field(30, ge=3, le=10_000, description="Timed calls per measurement.")
    warmup: int = Field(3, ge=0, le=1_000, description="Untimed calls before timing.")
    seed: int = Field(0, ge=0, description="Seed for Python, NumPy, torch and CuPy.")
    sizes: dict[str, int] = Field(
        default_factory=dict,
        description="Overrides of the suite sizes (matmul_n_fp32, copy_nbytes, ...).",
    )
    monitor_interval_s: float = Field(
        0.5, gt=0, description="GPU monitor sampling interval in seconds."
    )
    trust_policy_block: str | None = Field(
        None, description="Name of a saved TrustPolicyBlock; default rules if empty."
    )
    slo_policy_block: str | None = Field(
        None, description="Name of a saved SloPolicyBlock; default: regression checks only."
    )
    review: bool = Field(
        False, description="Pause for dual review when the result is T2 and reproduced."
    )
    review_timeout_s: int = Field(3600, ge=10, description="How long each review pause waits.")
    review_poll_s: int = Field(10, ge=1, description="How often a paused run checks for a review.")
    vram_timeout_s: float = Field(3600.0, gt=0, description="Longest wait for VRAM slots.")

    @property
    def target_device(self) -> str:
        """The device kind the figures are for: 'cpu' when asked for the CPU, else 'cuda'."""
        return "cpu" if self.device == "cpu" else "cuda"
