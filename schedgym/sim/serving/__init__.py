"""The LLM-serving core shared by GPUAutoscaling, AgentScheduling and PowerCapping (serving-core.md).

- ``params``: every knob, validated (:class:`ServingParams`), and KV sizing from model/hardware/TP;
- ``profile``: iteration latency and phase power from the SplitwiseSim table;
- ``state``: struct of arrays with a leading env axis;
- ``kernels``: numba, advance fleets event by event (continuous batching, chunked prefill, paged KV,
  preemption, lifecycle, routing);
- ``fleet``: :class:`ServingFleet`, the Python API the envs call;
- ``metrics``: per-request TTFT/TPOT/e2e and SLOs scaled by isolated latency.
"""

from schedgym.sim.serving.fleet import ServingFleet
from schedgym.sim.serving.metrics import isolated_latency, request_latencies, slo_met, slo_targets
from schedgym.sim.serving.params import ServingParams
from schedgym.sim.serving.profile import LatencyProfile, build_profile

__all__ = [
    "ServingFleet",
    "ServingParams",
    "LatencyProfile",
    "build_profile",
    "isolated_latency",
    "slo_targets",
    "request_latencies",
    "slo_met",
]
