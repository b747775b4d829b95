"""Memory-mapping instances extracted from real PyTorch programs, with roofline benefits.

A ``torch.nn.Module`` is traced with ``torch.fx.symbolic_trace`` and executed node by node on fake
tensors (``FakeTensorMode``: real shapes, dtypes, strides and aliasing, no data, no arithmetic), so a
ResNet-50 at batch 64 "runs" in about a second on a laptop CPU. A ``TorchDispatchMode`` watches the
ATen operators each graph node dispatches and records which tensors it reads, which storages it
creates and its FLOPs.

Choices (documented here because every consumer of these instances inherits them):

* **Schedule.** One schedule step per fx graph node that does work, in graph (topological) order.
  A node that dispatches only view operators (``view``, ``transpose``, ``chunk``, ``getitem`` ...)
  or nothing at all (``size()``) is free: it takes no step and creates no buffer, like an XLA bitcast.
  Each remaining node is one *fused* op: its internal temporaries (e.g. the mean/rstd that
  ``native_layer_norm`` returns, the copy ``reshape`` makes inside ``linear``) are neither buffers
  nor memory traffic, as in a fused XLA kernel.
* **Buffers.** One buffer per *storage*: every tensor a node creates (an activation) and every tensor
  from outside the graph that an op reads (model inputs, parameters, module buffers such as
  BatchNorm running statistics, constants). Views alias the buffer of their base storage, so a view's
  uses extend its base's live range. Size = the storage's bytes (numel x element size for a freshly
  made tensor). Zero-byte tensors are skipped.
* **Live ranges** are half-open ``[start, end)`` in schedule steps. An activation starts at its
  defining op and ends one past its last reader; a graph output stays live to the end of the program
  (``end = n_ops``). Inputs and parameters are buffers too, live from their first reader to one past
  their last reader (XLA's memory-space assignment likewise prefetches parameters into the
  alternate memory around their uses only).
* **Benefit** follows the roofline cost model of XLA's memory-space assignment
  (``MemorySpaceAssignmentCostAnalysis::GetAlternateMemoryBenefit`` in
  ``xla/service/memory_space_assignment/cost_analysis.cc``): an op takes
  ``max(flops / peak_flops, Σ bytes_slow / bw_slow + Σ bytes_fast / bw_fast)`` seconds. With every
  other buffer in slow memory, moving buffer ``b`` to fast memory saves
  ``max(C, M) - max(C, M - bytes_b / bw_slow + bytes_b / bw_fast)`` on each op that reads or writes
  it (zero while the op stays compute-bound). A buffer's benefit is that saving summed over its
  defining op and all its readers, in **seconds**. Bytes an op reads through a view count the view's
  bytes (a ``chunk`` of a fused QKV projection reads a third), capped at the buffer's size.
* **FLOPs** per op: ``torch.utils.flop_counter``'s formulas for matmul/conv/attention operators
  (2 x MACs), and the output element count for every other operator (elementwise, reductions,
  normalisations) — those ops are memory-bound under any realistic preset, so the estimate only has
  to be small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import flop_registry

from schedgym.envs.memory_mapping.types import Instance

__all__ = [
    "HardwarePreset",
    "HARDWARE_PRESETS",
    "TPU_LIKE",
    "GPU_LIKE",
    "TorchProgram",
    "trace_torch_program",
    "from_torch",
    "resolve_capacity",
    "get_hardware",
]

MIB = 1 << 20


@dataclass(frozen=True)
class HardwarePreset:
    """A two-level memory (fast on-chip, slow off-chip) and a peak compute rate for the roofline."""

    name: str
    fast_memory_bytes: int  # capacity of the fast memory: the instance's default capacity
    fast_bandwidth_bytes_per_s: float
    slow_bandwidth_bytes_per_s: float
    peak_flops_per_s: float  # dense bf16 matrix-unit peak
    alignment_bytes: int  # offset alignment of every buffer in fast memory
    source: str  # where the numbers come from

    def __post_init__(self) -> None:
        for name in ("fast_memory_bytes", "fast_bandwidth_bytes_per_s", "slow_bandwidth_bytes_per_s", "peak_flops_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"HardwarePreset.{name} must be > 0, got {getattr(self, name)!r}")
        if self.alignment_bytes < 1:
            raise ValueError(f"HardwarePreset.alignment_bytes must be >= 1, got {self.alignment_bytes!r}")


#: Google TPU v4. Jouppi et al., "TPU v4: An Optically Reconfigurable Supercomputer for Machine
#: Learning with Hardware Support for Embeddings", ISCA 2023 (arXiv:2304.01433), Table 1 / Sec. 2:
#: 275 TFLOP/s peak bf16, 32 GiB HBM2 at 1,200 GB/s, 128 MiB on-chip CMEM. The paper gives no CMEM
#: bandwidth figure; we take 10x HBM, the ratio the schedgym memory-mapping spec fixes for this preset.
#: No public TPU allocation alignment either: offsets are left unconstrained (alignment 1).
TPU_LIKE = HardwarePreset(
    name="tpu_like",
    fast_memory_bytes=128 * MIB,
    fast_bandwidth_bytes_per_s=10 * 1.2e12,
    slow_bandwidth_bytes_per_s=1.2e12,
    peak_flops_per_s=275e12,
    alignment_bytes=1,
    source="TPU v4 (Jouppi et al., ISCA 2023): 275 TFLOP/s bf16, HBM 1.2 TB/s, CMEM 128 MiB at ~10x HBM",
)

#: NVIDIA A100-SXM4-80GB. "NVIDIA A100 Tensor Core GPU" datasheet (2021): 312 TFLOP/s dense bf16,
#: HBM2e 2,039 GB/s; "NVIDIA A100 Tensor Core GPU Architecture" whitepaper (2020): 40 MB L2 with
#: 2.3x the L2 bandwidth of V100, whose L2 Jia et al. ("Dissecting the NVIDIA Volta GPU Architecture
#: via Microbenchmarking", arXiv:1804.06826, Table 3.2) measured at 2,155 GB/s -> ~4.96 TB/s.
#: Alignment: cudaMalloc returns addresses aligned to at least 256 bytes (CUDA C++ Programming
#: Guide, "Device Memory Accesses").
GPU_LIKE = HardwarePreset(
    name="gpu_like",
    fast_memory_bytes=40 * MIB,
    fast_bandwidth_bytes_per_s=2.3 * 2155e9,
    slow_bandwidth_bytes_per_s=2039e9,
    peak_flops_per_s=312e12,
    alignment_bytes=256,
    source="A100-SXM4-80GB datasheet + whitepaper: 312 TFLOP/s bf16, HBM2e 2.04 TB/s, L2 40 MiB at ~4.96 TB/s",
)

HARDWARE_PRESETS: dict[str, HardwarePreset] = {p.name: p for p in (TPU_LIKE, GPU_LIKE)}


def get_hardware(hardware: str | HardwarePreset) -> HardwarePreset:
    """Return a preset by name (or the preset itself); unknown names list the valid ones."""
    if isinstance(hardware, HardwarePreset):
        return hardware
    if hardware not in HARDWARE_PRESETS:
        raise ValueError(f"hardware must be one of {sorted(HARDWARE_PRESETS)} or a HardwarePreset, got {hardware!r}")
    return HARDWARE_PRESETS[hardware]


@dataclass
class TorchProgram:
    """Buffers, schedule and roofline costs of a traced program (richer than an ``Instance``).

    ``n`` buffers, ``n_ops`` schedule steps; ``buffer_*`` arrays have shape (n,), ``op_*`` (n_ops,).
    """

    name: str
    hardware: HardwarePreset
    buffer_start: np.ndarray  # (n,) int64, defining op or first reader
    buffer_end: np.ndarray  # (n,) int64, one past the last reader (n_ops for graph outputs)
    buffer_bytes: np.ndarray  # (n,) int64
    buffer_benefit_s: np.ndarray  # (n,) float64 seconds saved in fast memory
    buffer_kind: list[str]  # (n,) "activation" | "input" | "parameter" (anything from outside the graph but an input)
    buffer_name: list[str]  # (n,) fx node that defines it, or the parameter's qualified name
    op_name: list[str]  # (n_ops,) fx node name of each schedule step
    op_flops: np.ndarray  # (n_ops,) float64
    op_time_slow_s: np.ndarray  # (n_ops,) roofline time with every buffer in slow memory
    #: fx node name -> indices of the buffers holding its tensor outputs (views map to their base).
    node_buffers: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: fx node name -> schedule step (only for nodes that are ops).
    op_index: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.buffer_bytes.shape[0])

    @property
    def n_ops(self) -> int:
        return len(self.op_name)

    def peak_live_bytes(self) -> int:
        return self.to_instance(capacity=1).peak_live_bytes()

    def to_instance(self, capacity: int | float | None = None, name: str | None = None) -> Instance:
        """Package as an ``Instance``; ``capacity`` as in :func:`resolve_capacity`."""
        n = self.n
        inst = Instance(
            ids=np.arange(n, dtype=np.int64),
            start=self.buffer_start.copy(),
            end=self.buffer_end.copy(),
            size=self.buffer_bytes.copy(),
            benefit=self.buffer_benefit_s.copy(),
            alignment=np.full(n, self.hardware.alignment_bytes, dtype=np.int64),
            capacity=1,
            name=name or self.name,
            benefit_source="roofline",
        )
        cap = resolve_capacity(capacity, self.hardware, inst.peak_live_bytes())
        return Instance(
            ids=inst.ids, start=inst.start, end=inst.end, size=inst.size, benefit=inst.benefit,
            alignment=inst.alignment, capacity=cap, name=inst.name, benefit_source="roofline",
        )


def resolve_capacity(capacity: int | float | None, hardware: HardwarePreset, peak_live_bytes: int) -> int:
    """``None`` -> the preset's fast-memory bytes; an int -> bytes; a float in (0, 1] -> that fraction
    of the peak live bytes (at least 1 byte)."""
    if capacity is None:
        return int(hardware.fast_memory_bytes)
    if isinstance(capacity, bool):
        raise ValueError(f"capacity must be None, an int of bytes > 0 or a float in (0, 1], got {capacity!r}")
    if isinstance(capacity, (int, np.integer)):
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0 bytes, got {capacity}")
        return int(capacity)
    if isinstance(capacity, (float, np.floating)):
        if not (0.0 < capacity <= 1.0) or not math.isfinite(capacity):
            raise ValueError(f"capacity as a fraction of peak live bytes must be in (0, 1], got {capacity!r}")
        return max(1, int(round(float(capacity) * peak_live_bytes)))
    raise ValueError(f"capacity must be None, an int of bytes > 0 or a float in (0, 1], got {capacity!r}")


# --------------------------------------------------------------------------------------------------
# Tracing


def _storage_key(t: torch.Tensor) -> int:
    # The StorageImpl's address: shared by a tensor and all its views, distinct otherwise. Every
    # tensor whose key we remember is kept alive, so an address cannot be reused while remembered.
    return t.untyped_storage()._cdata


def _tensor_bytes(t: torch.Tensor) -> int:
    return int(t.numel()) * t.element_size()


_GATHER_OPS = {torch.ops.aten.embedding, torch.ops.aten.index_select, torch.ops.aten.gather, torch.ops.aten.index}


class _OpRecorder(TorchDispatchMode):
    """Records, for the fx node being run, the tensors its ATen ops read, create and their FLOPs."""

    def __init__(self, fake_mode: FakeTensorMode, param_names: dict[int, str]) -> None:
        super().__init__()
        self.fake_mode = fake_mode
        self.param_names = param_names  # id(real tensor) -> qualified name in the model
        self.fake_names: dict[int, str] = {}  # storage key of its fake -> qualified name
        self.keep_alive: list[torch.Tensor] = []
        self.begin_node()

    def begin_node(self) -> None:
        self.created: set[int] = set()  # storages made by ops of this node (temporaries or outputs)
        self.reads: dict[int, dict[int, tuple[torch.Tensor, int]]] = {}  # storage -> id(view) -> (view, bytes)
        self.flops = 0.0
        self.did_work = False  # dispatched at least one non-view op producing a tensor

    def _to_fake(self, x: Any) -> Any:
        # Parameters and buffers of a real model arrive as real tensors; the converter memoises, so a
        # parameter always maps to the same fake tensor (and the same storage key).
        if isinstance(x, torch.Tensor) and not isinstance(x, FakeTensor):
            fake = self.fake_mode.from_tensor(x)
            self.keep_alive.append(fake)
            if id(x) in self.param_names:
                self.fake_names.setdefault(_storage_key(fake), self.param_names[id(x)])
            return fake
        return x

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        args, kwargs = tree_map(self._to_fake, (args, kwargs))
        packet = func._overloadpacket
        if packet not in flop_registry and func is not torch.ops.prim.device.default:
            # Same fallback as FlopCounterMode: a composite op (e.g. an attention kernel without a
            # formula) decomposes into ops that have one.
            with self:
                r = func.decompose(*args, **kwargs)
            if r is not NotImplemented:
                return r
        out = func(*args, **kwargs)
        out_tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not out_tensors or func.is_view:
            return out
        self.did_work = True
        in_tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        out_bytes = sum(_tensor_bytes(t) for t in out_tensors)
        for pos, t in enumerate(in_tensors):
            key = _storage_key(t)
            if key not in self.created:
                nbytes = _tensor_bytes(t)
                if pos == 0 and packet in _GATHER_OPS:
                    # A gather reads only the rows it outputs; XLA's HloCostAnalysis::HandleGather
                    # likewise charges the operand at the output's size.
                    nbytes = min(nbytes, out_bytes)
                self.reads.setdefault(key, {})[id(t)] = (t, nbytes)
        for t in out_tensors:
            self.created.add(_storage_key(t))
            self.keep_alive.append(t)
        if packet in flop_registry:
            self.flops += float(flop_registry[packet](*args, **kwargs, out_val=out))
        else:
            self.flops += float(sum(t.numel() for t in out_tensors))
        return out


class _Buffers:
    def __init__(self) -> None:
        self.index: dict[int, int] = {}  # storage key -> buffer index
        self.start: list[int] = []
        self.last: list[int] = []  # last step that touches it
        self.nbytes: list[int] = []
        self.kind: list[str] = []
        self.name: list[str] = []

    def add(self, key: int, step: int, nbytes: int, kind: str, name: str) -> int:
        b = len(self.start)
        self.index[key] = b
        self.start.append(step)
        self.last.append(step)
        self.nbytes.append(nbytes)
        self.kind.append(kind)
        self.name.append(name)
        return b


def _named_tensors(model: torch.nn.Module) -> dict[int, str]:
    names: dict[int, str] = {}
    for qual, t in list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False)):
        names.setdefault(id(t), qual)
    return names


def trace_torch_program(
    model: torch.nn.Module,
    example_inputs: tuple,
    hardware: str | HardwarePreset = "tpu_like",
    name: str | None = None,
) -> TorchProgram:
    """Trace ``model(*example_inputs)`` with torch.fx on fake tensors and extract buffers and costs.

    ``example_inputs`` may be real CPU or ``meta`` tensors (only shapes and dtypes matter); the
    model's parameters may be real or on ``meta``. The model must be symbolically traceable by
    ``torch.fx.symbolic_trace`` (no data-dependent control flow).
    """
    hw = get_hardware(hardware)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_inputs, tuple):
        raise TypeError(f"example_inputs must be a tuple of model arguments, got {type(example_inputs).__name__}")
    try:
        gm = model if isinstance(model, torch.fx.GraphModule) else torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, ... on untraceable Python
        raise ValueError(
            f"model {type(model).__name__} cannot be traced by torch.fx.symbolic_trace "
            f"(data-dependent control flow or shape unpacking?): {exc}"
        ) from exc
    param_names = _named_tensors(model)

    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    recorder = _OpRecorder(fake_mode, param_names)
    bufs = _Buffers()
    external_name: dict[int, str] = {}  # storage key -> name, for tensors from outside the graph
    external_kind: dict[int, str] = {}
    node_keys: dict[str, list[int]] = {}
    op_name: list[str] = []
    op_flops: list[float] = []
    op_index: dict[str, int] = {}
    # (step, buffer, bytes) for every read and write; reduced to arrays at the end
    acc_step: list[int] = []
    acc_buf: list[int] = []
    acc_bytes: list[int] = []
    output_keys: list[int] = []

    placeholders = iter(example_inputs)

    class _Runner(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            if n.op == "placeholder":
                value = next(placeholders, None)
                if isinstance(value, torch.Tensor):
                    value = fake_mode.from_tensor(value)
                    recorder.keep_alive.append(value)
                    external_name.setdefault(_storage_key(value), n.name)
                    external_kind.setdefault(_storage_key(value), "input")
                node_keys[n.name] = [_storage_key(value)] if isinstance(value, torch.Tensor) else []
                return value
            if n.op == "output":
                outs = [t for t in tree_flatten(self.map_nodes_to_values(n.args, n))[0] if isinstance(t, torch.Tensor)]
                output_keys.extend(_storage_key(t) for t in outs)
                return super().run_node(n)
            recorder.begin_node()
            with recorder:
                result = super().run_node(n)
            tensors = [t for t in tree_flatten(result)[0] if isinstance(t, torch.Tensor)]
            if n.op == "get_attr" and tensors:
                for t in tensors:
                    recorder.param_names.setdefault(id(t), str(n.target))
                result = tree_map(recorder._to_fake, result)
                tensors = [t for t in tree_flatten(result)[0] if isinstance(t, torch.Tensor)]
            recorder.keep_alive.extend(tensors)
            node_keys[n.name] = [_storage_key(t) for t in tensors]
            if not recorder.did_work:
                return result  # a view, a getitem, a size(): no schedule step, no buffer
            step = len(op_name)
            op_name.append(n.name)
            op_index[n.name] = step
            op_flops.append(recorder.flops)
            for key, views in recorder.reads.items():
                b = bufs.index.get(key)
                if b is None:  # first use of a tensor from outside the graph
                    t0 = next(iter(views.values()))[0]
                    nbytes = int(t0.untyped_storage().nbytes())
                    if nbytes == 0:
                        continue
                    qual = recorder.fake_names.get(key) or external_name.get(key) or f"{n.name}.const{len(bufs.start)}"
                    b = bufs.add(key, step, nbytes, external_kind.get(key, "parameter"), qual)
                bufs.last[b] = step
                acc_step.append(step)
                acc_buf.append(b)
                acc_bytes.append(min(bufs.nbytes[b], sum(nb for _, nb in views.values())))
            seen: set[int] = set()
            for t in tensors:
                key = _storage_key(t)
                if key in recorder.created and key not in seen and key not in bufs.index:
                    seen.add(key)
                    nbytes = int(t.untyped_storage().nbytes())
                    if nbytes == 0:
                        continue
                    b = bufs.add(key, step, nbytes, "activation", n.name)
                    acc_step.append(step)
                    acc_buf.append(b)
                    acc_bytes.append(nbytes)
            return result

    # Parameters are turned into fake tensors by the recorder on first touch; the graph's own
    # placeholders are converted in run_node above.
    with fake_mode:
        _Runner(gm, garbage_collect_values=False).run(*example_inputs)

    n_ops = len(op_name)
    n = len(bufs.start)
    start = np.asarray(bufs.start, dtype=np.int64)
    end = np.asarray(bufs.last, dtype=np.int64) + 1
    for key in output_keys:
        b = bufs.index.get(key)
        if b is not None:
            end[b] = n_ops  # program outputs stay live until the program ends

    steps = np.asarray(acc_step, dtype=np.int64)
    buf_of = np.asarray(acc_buf, dtype=np.int64)
    nbytes = np.asarray(acc_bytes, dtype=np.float64)
    flops = np.asarray(op_flops, dtype=np.float64)
    compute_s = flops / hw.peak_flops_per_s
    memory_slow_s = np.bincount(steps, weights=nbytes / hw.slow_bandwidth_bytes_per_s, minlength=n_ops)
    time_slow_s = np.maximum(compute_s, memory_slow_s)
    memory_fast_s = memory_slow_s[steps] - nbytes / hw.slow_bandwidth_bytes_per_s + nbytes / hw.fast_bandwidth_bytes_per_s
    saving_s = np.maximum(time_slow_s[steps] - np.maximum(compute_s[steps], memory_fast_s), 0.0)
    benefit_s = np.bincount(buf_of, weights=saving_s, minlength=n)

    key_to_buf = bufs.index
    node_buffers = {
        name: tuple(key_to_buf[k] for k in keys if k in key_to_buf) for name, keys in node_keys.items()
    }
    return TorchProgram(
        name=name or type(model).__name__,
        hardware=hw,
        buffer_start=start,
        buffer_end=end,
        buffer_bytes=np.asarray(bufs.nbytes, dtype=np.int64),
        buffer_benefit_s=benefit_s.astype(np.float64),
        buffer_kind=bufs.kind,
        buffer_name=bufs.name,
        op_name=op_name,
        op_flops=flops,
        op_time_slow_s=time_slow_s,
        node_buffers=node_buffers,
        op_index=op_index,
    )


def from_torch(
    model: torch.nn.Module,
    example_inputs: tuple,
    hardware: str | HardwarePreset = "tpu_like",
    capacity: int | float | None = None,
    name: str | None = None,
) -> Instance:
    """Extract a memory-mapping ``Instance`` from ``model(*example_inputs)``.

    Args:
        model: a ``torch.fx``-traceable module (real or ``meta`` parameters).
        example_inputs: positional arguments of ``model.forward`` (real or ``meta`` tensors; only
            shapes and dtypes are used).
        hardware: ``"tpu_like"``, ``"gpu_like"`` or a :class:`HardwarePreset`; sets benefits,
            alignment and the default capacity.
        capacity: ``None`` -> the preset's fast-memory bytes; an int -> bytes; a float in (0, 1] ->
            that fraction of the instance's peak live bytes.
        name: instance name (default: the model's class name).

    Returns:
        An ``Instance`` with ``benefit_source="roofline"`` and benefits in seconds.
    """
    return trace_torch_program(model, example_inputs, hardware=hardware, name=name).to_instance(capacity)

