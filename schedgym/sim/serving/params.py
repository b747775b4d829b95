"""Every knob of the LLM-serving core, validated in one place (``ServingParams``).

Model and hardware facts used to size the paged KV cache (vLLM, Kwon et al., SOSP'23):

- KV bytes per token = 2 (K and V) x layers x KV heads x head dim x dtype bytes.
  Llama-2-70B: 80 layers, 8 KV heads (grouped-query attention), head dim 128, fp16 -> 327,680 B/token,
  weights ~138 GB (69e9 parameters x 2 B). BLOOM-176B: 70 layers, 112 KV heads (multi-head attention),
  head dim 128, fp16 -> 4,014,080 B/token, weights ~352 GB.
- KV pool per replica = tensor_parallel x GPU memory x ``gpu_memory_utilization`` - weights (vLLM's
  ``gpu_memory_utilization`` default 0.9; activations are neglected). With GPU memory 80e9 B
  (A100-80GB, H100-80GB) Llama-2-70B has ~6 GB (~18k tokens) of KV on TP2, ~150 GB on TP4, ~438 GB on TP8.
- Blocks of ``block_tokens = 16`` tokens (vLLM's default block size).

Power per GPU by phase (SplitwiseSim's constant power model, Patel et al. ISCA'24): A100 idle 63 W,
prefill 400 W, decode 250 W; H100 idle 75 W, prefill 700 W, decode 380 W.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from schedgym.envs.core.perf_profile import available_profiles
from schedgym.envs.core.validation import check_choice, check_float, check_int

__all__ = ["ModelSpec", "MODELS", "GPU_MEMORY_BYTES", "GPU_POWER_W", "ServingParams", "ROUTING", "PREEMPTION"]


@dataclass(frozen=True)
class ModelSpec:
    layers: int
    kv_heads: int
    head_dim: int
    dtype_bytes: int
    weight_bytes: float

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


MODELS: dict[str, ModelSpec] = {
    "llama2-70b": ModelSpec(layers=80, kv_heads=8, head_dim=128, dtype_bytes=2, weight_bytes=138e9),
    "bloom-176b": ModelSpec(layers=70, kv_heads=112, head_dim=128, dtype_bytes=2, weight_bytes=352e9),
}
#: GPU memory in bytes (the "-pcap" rows are the same H100 with a power cap).
GPU_MEMORY_BYTES: dict[str, float] = {"a100-80gb": 80e9, "h100-80gb": 80e9, "h100-80gb-pcap": 80e9}
#: (idle, prefill, decode) watts per GPU, SplitwiseSim's constant power model.
GPU_POWER_W: dict[str, tuple[float, float, float]] = {
    "a100-80gb": (63.0, 400.0, 250.0),
    "h100-80gb": (75.0, 700.0, 380.0),
    "h100-80gb-pcap": (75.0, 700.0, 380.0),
}
ROUTING = ("least_tokens", "round_robin")
PREEMPTION = ("recompute", "swap")


@dataclass(frozen=True)
class ServingParams:
    """Knobs of one serving fleet. Build with ``ServingParams.make(**kwargs)`` (validates every field).

    | field | default | meaning |
    |---|---|---|
    | model, hardware, tensor_parallel | llama2-70b, a100-80gb, 4 | SplitwiseSim profile row and KV sizing |
    | max_num_seqs | 64 | running sequences per replica (vLLM default 256; 64 is the largest batch the profile measured, so decode never extrapolates) |
    | max_num_batched_tokens | 2048 | token budget per iteration; longer prompts are prefilled in chunks (Sarathi-Serve, OSDI'24) |
    | gpu_memory_utilization | 0.9 | vLLM's default share of GPU memory for weights + KV |
    | block_tokens | 16 | paged-KV block size (vLLM) |
    | kv_capacity_tokens | None | override the KV pool (tokens per replica); None = sized from model/hardware/TP |
    | preemption | "recompute" | on KV exhaustion the newest sequence is recomputed later (vLLM V1 default) or swapped to host memory |
    | swap_bandwidth_gbs | 25 | host<->GPU copy bandwidth for swap, GB/s (PCIe 4.0 x16 ~25 GB/s in practice) |
    | routing | "least_tokens" | least outstanding tokens (join-shortest-queue family) or "round_robin" |
    | freq_alpha | 2.0 | dynamic SM power ~ f^alpha under a frequency cap f (PowerCapping hook, not calibrated here) |
    | decode_freq_sensitivity | 0.1 | decode slows by 1 + s (1/f - 1): decode is memory-bound |
    | decode_mem_power_share | 0.7 | share of decode's dynamic power drawn by HBM (frequency-independent) |
    """

    model: str = "llama2-70b"
    hardware: str = "a100-80gb"
    tensor_parallel: int = 4
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    gpu_memory_utilization: float = 0.9
    block_tokens: int = 16
    kv_capacity_tokens: int | None = None
    preemption: str = "recompute"
    swap_bandwidth_gbs: float = 25.0
    routing: str = "least_tokens"
    freq_alpha: float = 2.0
    decode_freq_sensitivity: float = 0.1
    decode_mem_power_share: float = 0.7

    @classmethod
    def make(cls, **kwargs: object) -> ServingParams:
        p = cls(**kwargs)  # type: ignore[arg-type]
        p.validate()
        return p

    def validate(self) -> None:
        profiles = available_profiles()
        check_choice("model", self.model, sorted({m for m, _, _ in profiles}))
        check_choice("hardware", self.hardware, sorted({h for m, h, _ in profiles if m == self.model}))
        check_int("tensor_parallel", self.tensor_parallel)
        check_choice(
            "tensor_parallel",
            self.tensor_parallel,
            sorted({t for m, h, t in profiles if m == self.model and h == self.hardware}),
        )
        check_int("max_num_seqs", self.max_num_seqs, low=1, high=4096)
        check_int("max_num_batched_tokens", self.max_num_batched_tokens, low=self.max_num_seqs, high=1 << 20)
        check_float("gpu_memory_utilization", self.gpu_memory_utilization, low=0.0, low_inclusive=False, high=1.0)
        check_int("block_tokens", self.block_tokens, low=1, high=1024)
        if self.block_tokens & (self.block_tokens - 1):
            raise ValueError(f"block_tokens must be a power of two (vLLM uses 8, 16 or 32), got {self.block_tokens}")
        if self.kv_capacity_tokens is not None:
            check_int("kv_capacity_tokens", self.kv_capacity_tokens, low=self.block_tokens, high=1 << 40)
        check_choice("preemption", self.preemption, PREEMPTION)
        check_float("swap_bandwidth_gbs", self.swap_bandwidth_gbs, low=0.0, low_inclusive=False)
        check_choice("routing", self.routing, ROUTING)
        check_float("freq_alpha", self.freq_alpha, low=0.0, high=4.0)
        check_float("decode_freq_sensitivity", self.decode_freq_sensitivity, low=0.0, high=1.0)
        check_float("decode_mem_power_share", self.decode_mem_power_share, low=0.0, high=1.0)
        if self.kv_blocks < 1:
            raise ValueError(
                f"tensor_parallel={self.tensor_parallel}: {self.model} weights ({self.spec.weight_bytes / 1e9:.0f} GB) "
                f"leave no KV cache on {self.tensor_parallel} x {self.hardware} at gpu_memory_utilization="
                f"{self.gpu_memory_utilization}; use a larger tensor_parallel"
            )

    @property
    def spec(self) -> ModelSpec:
        return MODELS[self.model]

    @property
    def kv_pool_tokens(self) -> int:
        """KV tokens one replica holds (module docstring for the formula)."""
        if self.kv_capacity_tokens is not None:
            return int(self.kv_capacity_tokens)
        free = self.tensor_parallel * GPU_MEMORY_BYTES[self.hardware] * self.gpu_memory_utilization
        return max(0, int((free - self.spec.weight_bytes) // self.spec.kv_bytes_per_token))

    @property
    def kv_blocks(self) -> int:
        return self.kv_pool_tokens // self.block_tokens

    @property
    def swap_s_per_block(self) -> float:
        """Seconds to copy one KV block between host and GPU memory."""
        return self.block_tokens * self.spec.kv_bytes_per_token / (self.swap_bandwidth_gbs * 1e9)

    @property
    def power_w(self) -> tuple[float, float, float]:
        return GPU_POWER_W[self.hardware]

    def max_request_tokens(self) -> int:
        """The longest request (prompt + output) a replica can hold alone in its KV pool."""
        return self.kv_blocks * self.block_tokens

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    # ------------------------------------------------------------------ arrays for the kernels
    def int_array(self) -> np.ndarray:
        out = np.zeros(N_PI, dtype=np.int64)
        out[PI_MAX_SEQS] = self.max_num_seqs
        out[PI_BUDGET] = self.max_num_batched_tokens
        out[PI_BLOCK] = self.block_tokens
        out[PI_BLOCKS] = self.kv_blocks
        out[PI_SWAP] = int(self.preemption == "swap")
        out[PI_ROUND_ROBIN] = int(self.routing == "round_robin")
        out[PI_GPUS] = self.tensor_parallel
        out[PI_BLOCK_SHIFT] = self.block_tokens.bit_length() - 1
        return out

    def float_array(self) -> np.ndarray:
        out = np.zeros(N_PF, dtype=np.float64)
        out[PF_SWAP_S_PER_BLOCK] = self.swap_s_per_block
        idle, prefill, decode = self.power_w
        out[PF_IDLE_W], out[PF_PREFILL_W], out[PF_DECODE_W] = idle, prefill, decode
        out[PF_ALPHA] = self.freq_alpha
        out[PF_DECODE_FREQ_SENS] = self.decode_freq_sensitivity
        out[PF_DECODE_MEM_SHARE] = self.decode_mem_power_share
        return out


# Indices of the parameter arrays the kernels receive (numba reads these module constants).
PI_MAX_SEQS, PI_BUDGET, PI_BLOCK, PI_BLOCKS, PI_SWAP, PI_ROUND_ROBIN, PI_GPUS, PI_BLOCK_SHIFT = range(8)
N_PI = 8
PF_SWAP_S_PER_BLOCK, PF_IDLE_W, PF_PREFILL_W, PF_DECODE_W, PF_ALPHA, PF_DECODE_FREQ_SENS, PF_DECODE_MEM_SHARE = range(7)
N_PF = 7


def blocks_for(tokens: int, block_tokens: int) -> int:
    return -(-int(tokens) // block_tokens) if tokens > 0 else 0


