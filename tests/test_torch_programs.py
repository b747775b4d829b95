"""Extraction of memory-mapping instances from PyTorch programs (torch_programs.py, models.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.fx
from torch import nn

from schedgym.envs.memory_mapping.models import (
    TORCH_MODELS,
    MLPMixer,
    ResNet,
    TransformerDecoder,
    load_torch_instance,
)
from schedgym.envs.memory_mapping.torch_programs import (
    GPU_LIKE,
    TPU_LIKE,
    TorchProgram,
    from_torch,
    trace_torch_program,
)
from schedgym.envs.memory_mapping.types import Instance


def _tiny_models() -> dict[str, tuple[nn.Module, tuple]]:
    torch.manual_seed(0)
    resnet = ResNet(blocks=(1, 1, 1, 1), base_width=8, num_classes=10, image_size=32).eval()
    transformer = TransformerDecoder(vocab_size=64, d_model=32, n_heads=4, n_layers=2, seq_len=16).eval()
    mixer = MLPMixer(image_size=32, patch_size=8, channels=32, depth=2, token_hidden=16, channel_hidden=64).eval()
    return {
        "resnet": (resnet, resnet.example_inputs(batch_size=2)),
        "transformer": (transformer, transformer.example_inputs(batch_size=2)),
        "mlp_mixer": (mixer, mixer.example_inputs(batch_size=2)),
    }


@pytest.fixture(scope="module")
def tiny() -> dict[str, tuple[nn.Module, tuple, TorchProgram]]:
    return {k: (m, x, trace_torch_program(m, x)) for k, (m, x) in _tiny_models().items()}


@pytest.fixture(scope="module")
def registry_instances() -> dict[str, Instance]:
    return {name: load_torch_instance(name) for name in TORCH_MODELS}


def _real_node_outputs(model: nn.Module, inputs: tuple) -> dict[str, object]:
    """Run the fx graph on real CPU tensors, keeping every node's output."""
    gm = torch.fx.symbolic_trace(model)
    outputs: dict[str, object] = {}

    class Keep(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> object:
            out = super().run_node(n)
            outputs[n.name] = out
            return out

    with torch.no_grad():
        Keep(gm, garbage_collect_values=False).run(*inputs)
    return outputs


@pytest.mark.parametrize("model_name", ["resnet", "transformer", "mlp_mixer"])
def test_sizes_equal_real_tensor_bytes(tiny, model_name: str) -> None:
    model, inputs, prog = tiny[model_name]
    real = _real_node_outputs(model, inputs)
    checked = 0
    for b in range(prog.n):
        if prog.buffer_kind[b] == "activation":
            out = real[prog.buffer_name[b]]
            assert isinstance(out, torch.Tensor)
            assert prog.buffer_bytes[b] == out.numel() * out.element_size(), prog.buffer_name[b]
            checked += 1
    assert checked >= 10
    # Parameters and inputs: their own bytes.
    params = dict(model.named_parameters()) | dict(model.named_buffers())
    for b in range(prog.n):
        if prog.buffer_kind[b] == "parameter" and prog.buffer_name[b] in params:
            p = params[prog.buffer_name[b]]
            assert prog.buffer_bytes[b] == p.numel() * p.element_size()
        elif prog.buffer_kind[b] == "input":
            assert prog.buffer_bytes[b] == inputs[0].numel() * inputs[0].element_size()
    # Forward hooks on leaf modules of a plain eager run agree too.
    hooked: dict[str, list[int]] = {}
    handles = [
        mod.register_forward_hook(
            lambda m, a, out, qual=qual: hooked.setdefault(qual, []).append(out.numel() * out.element_size())
        )
        for qual, mod in model.named_modules()
        if not list(mod.children()) and qual
    ]
    with torch.no_grad():
        model(*inputs)
    for h in handles:
        h.remove()
    n_hooked = 0
    for qual, sizes in hooked.items():
        for call, nbytes in enumerate(sizes):  # fx names the k-th call of a module "<qual>_<k>"
            node = qual.replace(".", "_") + (f"_{call}" if call else "")
            assert prog.buffer_bytes[prog.node_buffers[node][0]] == nbytes, node
            n_hooked += 1
    assert n_hooked >= 10


def _op_consumers(gm: torch.fx.GraphModule, prog: TorchProgram) -> dict[str, set[int]]:
    """For each node, the schedule steps of the ops that read it, following free (view) nodes."""
    consumers: dict[str, set[int]] = {}
    for node in reversed(list(gm.graph.nodes)):
        steps: set[int] = set()
        for user in node.users:
            if user.name in prog.op_index:
                steps.add(prog.op_index[user.name])
            elif user.op != "output":
                steps |= consumers[user.name]
        consumers[node.name] = steps
    return consumers


@pytest.mark.parametrize("model_name", ["resnet", "transformer", "mlp_mixer"])
def test_live_ranges_consistent_with_graph(tiny, model_name: str) -> None:
    model, _, prog = tiny[model_name]
    gm = torch.fx.symbolic_trace(model)
    assert np.all(prog.buffer_start < prog.buffer_end)
    assert np.all(prog.buffer_start >= 0) and np.all(prog.buffer_end <= prog.n_ops)
    # Ops appear in graph (topological) order, one step each.
    graph_order = [n.name for n in gm.graph.nodes if n.name in prog.op_index]
    assert graph_order == prog.op_name
    assert [prog.op_index[n] for n in graph_order] == list(range(prog.n_ops))
    # Every consumer op lies inside the live range of each of its inputs' buffers.
    for node in gm.graph.nodes:
        if node.name not in prog.op_index:
            continue
        step = prog.op_index[node.name]
        for inp in node.all_input_nodes:
            for b in prog.node_buffers.get(inp.name, ()):
                assert prog.buffer_start[b] <= step < prog.buffer_end[b], (node.name, inp.name)
    # An activation starts at its defining op and ends one past its last reader (graph outputs: end).
    consumers = _op_consumers(gm, prog)
    output_nodes = {n.name for n in next(n for n in gm.graph.nodes if n.op == "output").all_input_nodes}
    for b in range(prog.n):
        if prog.buffer_kind[b] != "activation":
            continue
        name = prog.buffer_name[b]
        assert prog.buffer_start[b] == prog.op_index[name]
        # readers of the buffer: readers of its defining node and of every view that aliases it
        readers = set().union(*(consumers[n] for n, bs in prog.node_buffers.items() if b in bs))
        if name in output_nodes:
            assert prog.buffer_end[b] == prog.n_ops
        else:
            assert prog.buffer_end[b] == max(readers | {prog.buffer_start[b]}) + 1, name


def test_views_alias_their_base_and_take_no_step(tiny) -> None:
    _, _, prog = tiny["transformer"]
    qkv = prog.node_buffers["blocks_0_qkv"]
    assert len(qkv) == 1
    for view in ("chunk", "getitem", "getitem_1", "getitem_2", "transpose", "reshape"):
        assert view not in prog.op_index
        assert set(prog.node_buffers[view]) == set(qkv)


def test_in_place_op_extends_its_buffer() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(inplace=True), nn.Linear(16, 4))
    prog = trace_torch_program(model, (torch.zeros(2, 8),))
    assert prog.op_name == ["_0", "_1", "_2"]  # fx names the Sequential's children _0, _1, _2
    (hidden,) = prog.node_buffers["_0"]
    assert prog.node_buffers["_1"] == (hidden,)  # relu_ writes into the Linear's output
    assert (prog.buffer_start[hidden], prog.buffer_end[hidden]) == (0, 3)
    assert sorted(prog.buffer_kind).count("parameter") == 4
    assert prog.n == 7  # input, 4 parameters, hidden, output


class _MatmulRelu(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.relu(a @ b)


def test_roofline_benefits_match_hand_computation() -> None:
    n = 1024
    a = torch.empty(n, n, dtype=torch.bfloat16, device="meta")
    prog = trace_torch_program(_MatmulRelu(), (a, a.clone()), hardware=TPU_LIKE)
    assert prog.op_name == ["matmul", "relu"]
    assert prog.op_flops[0] == 2 * n**3
    tile = n * n * 2  # bytes of each bf16 matrix
    # matmul: 2n^3 / 275e12 = 7.8 us of compute vs 3 tiles / 1.2e12 = 5.2 us of HBM traffic:
    # compute-bound, so its operands gain nothing from fast memory.
    assert 2 * n**3 / TPU_LIKE.peak_flops_per_s > 3 * tile / TPU_LIKE.slow_bandwidth_bytes_per_s
    by_name = dict(zip(prog.buffer_name, prog.buffer_benefit_s))
    assert by_name["a"] == 0.0 and by_name["b"] == 0.0
    # The product is read by the memory-bound relu: it saves its bytes at the bandwidth difference.
    per_byte_s = 1 / TPU_LIKE.slow_bandwidth_bytes_per_s - 1 / TPU_LIKE.fast_bandwidth_bytes_per_s
    assert by_name["matmul"] == pytest.approx(tile * per_byte_s, rel=1e-9)
    assert by_name["relu"] == pytest.approx(tile * per_byte_s, rel=1e-9)


def test_registry_models_load(registry_instances) -> None:
    for name, inst in registry_instances.items():
        assert inst.name == f"torch:{name}"
        assert inst.benefit_source == "roofline"
        assert 150 <= inst.n <= 5000
        assert np.all(inst.start < inst.end) and np.all(inst.size > 0)
        assert np.all(inst.benefit >= 0) and np.count_nonzero(inst.benefit) > inst.n // 4
        assert inst.capacity == TPU_LIKE.fast_memory_bytes
        assert inst.peak_live_bytes() > inst.capacity  # the default makes the game non-trivial
        assert np.all(inst.alignment == TPU_LIKE.alignment_bytes)


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ValueError) as err:
        load_torch_instance("vgg")
    for name in TORCH_MODELS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="batch_size"):
        load_torch_instance("resnet", batch_size=0)
    with pytest.raises(ValueError, match="hardware"):
        load_torch_instance("resnet", hardware="ipu")


def test_hardware_preset_changes_benefits(tiny) -> None:
    model, inputs, tpu = tiny["resnet"]
    gpu = trace_torch_program(model, inputs, hardware="gpu_like")
    np.testing.assert_array_equal(tpu.buffer_bytes, gpu.buffer_bytes)
    np.testing.assert_array_equal(tpu.buffer_start, gpu.buffer_start)
    assert not np.allclose(tpu.buffer_benefit_s, gpu.buffer_benefit_s)
    inst = gpu.to_instance()
    assert inst.capacity == GPU_LIKE.fast_memory_bytes and np.all(inst.alignment == 256)


def test_capacity_argument(tiny) -> None:
    model, inputs, prog = tiny["mlp_mixer"]
    peak = prog.peak_live_bytes()
    assert from_torch(model, inputs, capacity=0.5).capacity == round(0.5 * peak)
    assert from_torch(model, inputs, capacity=12345).capacity == 12345
    for bad in (0, -1, 1.5, 0.0, "big"):
        with pytest.raises(ValueError, match="capacity"):
            from_torch(model, inputs, capacity=bad)


def test_dtype_sets_bytes() -> None:
    half = load_torch_instance("mlp_mixer", batch_size=2, dtype=torch.bfloat16)
    full = load_torch_instance("mlp_mixer", batch_size=2, dtype=torch.float32)
    np.testing.assert_array_equal(full.size, 2 * half.size)


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum() > 0 else x


def test_untraceable_model_error_names_it() -> None:
    with pytest.raises(ValueError, match="_DataDependent cannot be traced"):
        from_torch(_DataDependent(), (torch.ones(3),))
    with pytest.raises(TypeError, match="example_inputs"):
        from_torch(nn.ReLU(), torch.ones(3))  # type: ignore[arg-type]
