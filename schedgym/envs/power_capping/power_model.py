"""Power and performance of a DGX-A100 LLM inference server under GPU SM-clock caps (PowerCapping-v2).

Every constant names its source. A server is eight A100-80GB GPUs running one tensor-parallel (TP8)
llama2-70b replica of the serving core (:mod:`schedgym.sim.serving`). The core gives each iteration its
phase (prefill-carrying = compute-bound, pure decode = memory-bound), its duration under a clock cap
``f = clock / F_MAX_MHZ`` and its per-GPU power (:func:`schedgym.sim.serving.kernels.phase_power_w`)::

    prefill (compute-bound):  t = t0 / f                       P = idle + (P_prefill - idle) f^ALPHA
    decode  (memory-bound):   t = t0 (1 + s (1/f - 1))         P = idle + (P_decode - idle) (m + (1 - m) f^ALPHA)

with SplitwiseSim's phase powers (A100: idle 63 W and prefill 400 W = TDP from its constant power model,
``configs/power_model/constant.yaml``; decode 174 W = 0.435 x TDP, the average power its ``perf_model.csv``
measured for decode-dominated llama2-70b TP8 runs, instead of the constant model's 250 W; Patel et al.,
"Splitwise", ISCA'24, MIT). Prefill spikes: the table's peak power grows with the prompt (0.46 x TDP at
128 tokens, 0.99 at 2048, batch 1); here a prefill iteration draws TDP, so a server's 1-s power grows
with the share of the second spent in prefill and reaches the rated 6.5 kW for prompts of ~8k tokens
(tested). ``m = DECODE_MEM_SHARE`` the share
of decode's dynamic power drawn by HBM (frequency-independent) and ``s = DECODE_FREQ_SENSITIVITY``.

Server power adds the non-GPU parts (CPUs, NVSwitches, NICs, fans): a fixed idle draw, and a dynamic
draw that follows the GPUs'::

    server_w = SERVER_IDLE_W + GPUS_PER_SERVER * (1 + NON_GPU_PER_GPU_DYN) * gpu_dynamic_w

so that eight GPUs in prefill draw the DGX-A100's rated 6.5 kW and GPUs are about half of it (POLCA).

Calibration of ``ALPHA`` (POLCA, Patel et al., ASPLOS'24: frequency capping gives "up to 20 % peak power
reduction" for "<= ~7 % performance loss"): peak power is the prefill phase, whose throughput falls
in proportion to the clock. At the clock that costs prefill 7 % of its throughput (``f = 0.93``) the GPU
must draw 80 % of its prefill peak::

    idle + (P_prefill - idle) 0.93^ALPHA = 0.80 P_prefill   ->   ALPHA = ln(257 / 337) / ln(0.93) = 3.74

(dynamic power ~ f V^2 with the voltage following the clock on the DVFS curve gives an exponent near 3;
the rest is leakage falling with voltage). Decode loses 0.75 % of its throughput at that clock and keeps
95 % of its power: capping pays where the power is, in the prefill spikes.
``DECODE_MEM_SHARE = 0.7``: decode streams the weights and KV cache from HBM every step (memory-bound,
Splitwise section 3; POLCA: "token phase ... less sensitive to frequency"), so most of its power is the
memory's, which an SM clock cap does not touch. ``DECODE_FREQ_SENSITIVITY = 0.1``: decode time grows by a
tenth of the compute slowdown (POLCA: almost no decode latency impact on H100 at a 50 % power cap).
"""

from __future__ import annotations

import math

import numpy as np

from schedgym.sim.serving.params import GPU_POWER_W

__all__ = [
    "F_MAX_MHZ",
    "F_BASE_MHZ",
    "F_BRAKE_MHZ",
    "GPU_IDLE_W",
    "GPU_PREFILL_W",
    "GPU_DECODE_W",
    "PREFILL_DYN_W",
    "DECODE_DYN_W",
    "GPUS_PER_SERVER",
    "SERVER_IDLE_W",
    "SERVER_RATED_PEAK_W",
    "NON_GPU_PER_GPU_DYN",
    "SERVER_DYN_MULT",
    "ALPHA",
    "DECODE_MEM_SHARE",
    "DECODE_FREQ_SENSITIVITY",
    "calibrate_alpha",
    "prefill_power_factor",
    "decode_power_factor",
    "prefill_slowdown",
    "decode_slowdown",
    "server_power_w",
]

# --- A100 SM clocks (NVIDIA A100 datasheet; POLCA section 5) --------------------------------------
F_MAX_MHZ = 1410.0  #: A100 maximum boost clock
F_BASE_MHZ = 1275.0  #: A100 base clock; POLCA's first low-priority cap
F_BRAKE_MHZ = 288.0  #: clock the out-of-band power brake drops every GPU to (POLCA)

# --- Per-GPU phase power, A100-80GB (SplitwiseSim constant power model, via the serving core) -------
GPU_IDLE_W, GPU_PREFILL_W, _CONSTANT_MODEL_DECODE_W = GPU_POWER_W["a100-80gb"]
#: Decode power per GPU measured for this configuration (SplitwiseSim perf_model.csv, llama2-70b,
#: A100-80GB, TP8: decode-dominated runs average 0.43-0.46 x TDP at batch 1-16, i.e. ~174 W), used
#: instead of the constant model's 250 W: decode is memory-bound and draws well under TDP.
GPU_DECODE_W = 0.435 * GPU_PREFILL_W
PREFILL_DYN_W = GPU_PREFILL_W - GPU_IDLE_W
DECODE_DYN_W = GPU_DECODE_W - GPU_IDLE_W

# --- Server (DGX-A100) ------------------------------------------------------------------------------
GPUS_PER_SERVER = 8  #: DGX-A100; one TP8 llama2-70b replica per server (SplitwiseSim profile rows)
SERVER_IDLE_W = 1500.0  #: DGX-A100 idle draw (POLCA's characterisation: ~1.5 kW)
SERVER_RATED_PEAK_W = 6500.0  #: DGX-A100 maximum system power (NVIDIA DGX A100 datasheet: 6.5 kW)
#: Non-GPU watts per GPU dynamic watt: all GPUs at full prefill draw exactly the rated 6.5 kW.
NON_GPU_PER_GPU_DYN = (SERVER_RATED_PEAK_W - SERVER_IDLE_W - GPUS_PER_SERVER * PREFILL_DYN_W) / (
    GPUS_PER_SERVER * PREFILL_DYN_W
)  # 0.855
#: Server watts per watt of dynamic power of one GPU.
SERVER_DYN_MULT = 1.0 + NON_GPU_PER_GPU_DYN

DECODE_MEM_SHARE = 0.7
DECODE_FREQ_SENSITIVITY = 0.1

# --- POLCA's measured trade-off used to calibrate ALPHA ---------------------------------------------
POLCA_PEAK_POWER_REDUCTION = 0.20  #: "up to 20 % peak power reduction ..."
POLCA_PERF_LOSS = 0.07  #: "... for <= ~7 % performance loss"


def calibrate_alpha(
    peak_power_reduction: float = POLCA_PEAK_POWER_REDUCTION, perf_loss: float = POLCA_PERF_LOSS
) -> float:
    """The clock exponent at which prefill, slowed to ``1 - perf_loss`` of its throughput, draws
    ``1 - peak_power_reduction`` of its uncapped power (module docstring)."""
    f_cal = 1.0 - perf_loss
    target_dyn = ((1.0 - peak_power_reduction) * GPU_PREFILL_W - GPU_IDLE_W) / PREFILL_DYN_W
    return math.log(target_dyn) / math.log(f_cal)


ALPHA = calibrate_alpha()  # 3.74


def _f(freq_mhz: np.ndarray | float) -> np.ndarray:
    return np.asarray(freq_mhz, dtype=np.float64) / F_MAX_MHZ


def prefill_power_factor(freq_mhz: np.ndarray | float) -> np.ndarray:
    """Share of prefill's dynamic GPU power left at ``freq_mhz``."""
    return _f(freq_mhz) ** ALPHA


def decode_power_factor(freq_mhz: np.ndarray | float) -> np.ndarray:
    """Share of decode's dynamic GPU power left at ``freq_mhz`` (HBM share unaffected)."""
    return DECODE_MEM_SHARE + (1.0 - DECODE_MEM_SHARE) * _f(freq_mhz) ** ALPHA


def prefill_slowdown(freq_mhz: np.ndarray | float) -> np.ndarray:
    """Factor by which a prefill iteration takes longer at ``freq_mhz`` (compute-bound: ``1 / f``)."""
    return 1.0 / _f(freq_mhz)


def decode_slowdown(freq_mhz: np.ndarray | float) -> np.ndarray:
    """Factor by which a decode iteration takes longer at ``freq_mhz`` (memory-bound)."""
    return 1.0 + DECODE_FREQ_SENSITIVITY * (1.0 / _f(freq_mhz) - 1.0)


def server_power_w(prefill_share: np.ndarray | float, decode_share: np.ndarray | float, freq_mhz: np.ndarray | float) -> np.ndarray:
    """Server watts when a share of the time is spent in each phase at clock ``freq_mhz``."""
    dyn = PREFILL_DYN_W * np.asarray(prefill_share) * prefill_power_factor(freq_mhz) + DECODE_DYN_W * np.asarray(
        decode_share
    ) * decode_power_factor(freq_mhz)
    return SERVER_IDLE_W + GPUS_PER_SERVER * SERVER_DYN_MULT * dyn
