"""Power and performance of a DGX-A100 LLM inference server under GPU SM-clock caps.

Every constant names its source. The model is deliberately small: a server is eight A100-80GB GPUs
running one tensor-parallel (TP8) replica; in each 1 s tick it spends a fraction ``u_prefill`` of the
time in the compute-bound prefill (prompt) phase and ``u_decode`` in the memory-bound decode (token)
phase, and is idle otherwise.

Power (per GPU, watts)::

    gpu_w = GPU_IDLE_W + (PREFILL_DYN_W * u_prefill + DECODE_DYN_W * u_decode) * (f / F_MAX_MHZ) ** ALPHA

Server power adds the non-GPU parts (CPUs, NVSwitches, NICs, fans), whose idle draw is fixed and whose
dynamic draw follows the GPUs' (fans and NVSwitch traffic scale with GPU activity)::

    server_w = NON_GPU_IDLE_W + GPUS_PER_SERVER * (gpu_w + NON_GPU_PER_GPU_DYN * (gpu_w - GPU_IDLE_W))

Performance under a clock cap ``f``:

- prefill is compute-bound, its time scales as ``F_MAX_MHZ / f`` (POLCA, Patel et al. ASPLOS'24: "prompt
  phase ... sensitive to frequency"; Splitwise's power-capped H100 SKU slows prompt by 30 % at 70 % TDP);
- decode is memory-bound (roofline): its step time is ``max(1, DECODE_COMPUTE_FRACTION * F_MAX_MHZ / f)``
  times the uncapped one, i.e. unaffected until the clock falls below half of the maximum (POLCA: almost no
  decode latency impact at a 50 % power cap on H100; Splitwise's H100-pcap rows have token_time = 1.00x).

Calibration of the clock exponent ``ALPHA``
-------------------------------------------
POLCA measured that capping GPU frequency lowers *peak* power by up to 20 % for at most ~7 % inference
performance loss (~0.35 % performance per % of power). Peak power is the prefill phase at full utilisation,
and the worst-case performance loss is that of the compute-bound prefill (``1 / r - 1`` at ``r = f / F_MAX``).
Requiring both at the same clock::

    r_cal = 1 / (1 + 0.07)                                     # 7 % slower prefill  -> r = 0.9346
    GPU_IDLE_W + PREFILL_DYN_W * r_cal ** ALPHA = 0.80 * GPU_PREFILL_W
    ALPHA = ln((0.80 * 400 - 63) / (400 - 63)) / ln(r_cal) = 4.006

An exponent near 4 is in line with dynamic power ~ f * V**2 with voltage following frequency on the
DVFS curve, plus the fall of leakage with voltage. Decode loses nothing at that clock (memory-bound), so
an end-to-end inference mix loses less than 7 %, which is consistent with POLCA's "<= ~7 %".
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "F_MAX_MHZ",
    "F_BASE_MHZ",
    "F_BRAKE_MHZ",
    "GPU_IDLE_W",
    "GPU_PREFILL_W",
    "GPU_DECODE_W",
    "GPUS_PER_SERVER",
    "SERVER_IDLE_W",
    "SERVER_RATED_PEAK_W",
    "NON_GPU_IDLE_W",
    "NON_GPU_PER_GPU_DYN",
    "ALPHA",
    "DECODE_COMPUTE_FRACTION",
    "calibrate_alpha",
    "dynamic_power_factor",
    "prefill_stretch",
    "decode_stretch",
    "server_power_w",
]

# --- A100 SM clocks (NVIDIA A100 datasheet; POLCA section 5) --------------------------------------
F_MAX_MHZ = 1410.0  #: A100 maximum boost clock
F_BASE_MHZ = 1275.0  #: A100 base clock; POLCA's first low-priority cap
F_BRAKE_MHZ = 288.0  #: clock the out-of-band power brake drops every GPU to (POLCA)

# --- Per-GPU phase power, A100-80GB (SplitwiseSim configs/power_model/constant.yaml, MIT) ---------
GPU_IDLE_W = 63.0
GPU_PREFILL_W = 400.0  #: prompt phase (= A100 TDP); SplitwiseSim's measured peaks reach 1.0-1.09x TDP
GPU_DECODE_W = 250.0  #: token phase
PREFILL_DYN_W = GPU_PREFILL_W - GPU_IDLE_W
DECODE_DYN_W = GPU_DECODE_W - GPU_IDLE_W

# --- Server (DGX-A100) ------------------------------------------------------------------------------
GPUS_PER_SERVER = 8  #: DGX-A100; one TP8 llama2-70b replica per server (SplitwiseSim profile rows)
SERVER_IDLE_W = 1500.0  #: DGX-A100 idle draw (POLCA's characterisation: ~1.5 kW)
SERVER_RATED_PEAK_W = 6500.0  #: DGX-A100 maximum system power (NVIDIA DGX A100 datasheet: 6.5 kW)
NON_GPU_IDLE_W = SERVER_IDLE_W - GPUS_PER_SERVER * GPU_IDLE_W  # 996 W
#: Non-GPU watts per GPU dynamic watt, chosen so that all GPUs at full prefill draw exactly the rated
#: 6.5 kW. Then GPUs are 3.2 kW of 6.5 kW, "about half of server power" (POLCA).
NON_GPU_PER_GPU_DYN = (SERVER_RATED_PEAK_W - SERVER_IDLE_W - GPUS_PER_SERVER * PREFILL_DYN_W) / (
    GPUS_PER_SERVER * PREFILL_DYN_W
)  # 0.855

#: Decode is compute-bound only below this fraction of F_MAX (roofline knee); see the module docstring.
DECODE_COMPUTE_FRACTION = 0.5

# --- POLCA's measured trade-off used to calibrate ALPHA ---------------------------------------------
POLCA_PEAK_POWER_REDUCTION = 0.20  #: "up to 20 % peak power reduction ..."
POLCA_PERF_LOSS = 0.07  #: "... for <= ~7 % performance loss"


def calibrate_alpha(
    peak_power_reduction: float = POLCA_PEAK_POWER_REDUCTION, perf_loss: float = POLCA_PERF_LOSS
) -> float:
    """The clock exponent at which a prefill slowed by ``perf_loss`` draws ``1 - peak_power_reduction``
    of its uncapped power (see the module docstring)."""
    r_cal = 1.0 / (1.0 + perf_loss)
    target_dyn = ((1.0 - peak_power_reduction) * GPU_PREFILL_W - GPU_IDLE_W) / PREFILL_DYN_W
    return math.log(target_dyn) / math.log(r_cal)


ALPHA = calibrate_alpha()  # 4.006


def dynamic_power_factor(freq_mhz: np.ndarray | float) -> np.ndarray:
    """``(f / F_MAX) ** ALPHA``: the share of a GPU's dynamic power left at clock ``freq_mhz``."""
    return (np.asarray(freq_mhz, dtype=np.float64) / F_MAX_MHZ) ** ALPHA


def prefill_stretch(freq_mhz: np.ndarray | float) -> np.ndarray:
    """Factor by which prefill takes longer at ``freq_mhz`` (compute-bound: ``F_MAX / f``)."""
    return F_MAX_MHZ / np.asarray(freq_mhz, dtype=np.float64)


def decode_stretch(freq_mhz: np.ndarray | float) -> np.ndarray:
    """Factor by which a decode step takes longer at ``freq_mhz`` (roofline: flat above the knee)."""
    return np.maximum(1.0, DECODE_COMPUTE_FRACTION * F_MAX_MHZ / np.asarray(freq_mhz, dtype=np.float64))


def server_power_w(u_prefill: np.ndarray, u_decode: np.ndarray, dyn_factor: np.ndarray) -> np.ndarray:
    """Server power (W) given the fraction of the tick in each phase and ``dynamic_power_factor``."""
    gpu_dyn_w = (PREFILL_DYN_W * u_prefill + DECODE_DYN_W * u_decode) * dyn_factor
    return SERVER_IDLE_W + GPUS_PER_SERVER * (1.0 + NON_GPU_PER_GPU_DYN) * gpu_dyn_w
