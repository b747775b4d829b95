"""Model definitions in plain torch for ``instance="torch:<model>"`` (no torchvision needed).

Each model is built on the ``meta`` device (no weights are allocated or initialised) and traced on
fake tensors by :mod:`schedgym.envs.memory_mapping.torch_programs`, so even a batch whose activations
take gigabytes extracts in about a second. Default sizes follow the published architectures
(ResNet-50, a GPT-style decoder, MLP-Mixer-B/16) in bf16 — the dtype TPUs and A100s run them in —
with batch sizes chosen so the peak live bytes exceed the TPU-like preset's 128 MiB fast memory
several times over: the default capacity (the preset's fast memory) makes the game non-trivial.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from schedgym.envs.memory_mapping.torch_programs import HardwarePreset, from_torch
from schedgym.envs.memory_mapping.types import Instance

__all__ = [
    "ResNet",
    "TransformerDecoder",
    "MLPMixer",
    "TorchModelSpec",
    "TORCH_MODELS",
    "load_torch_instance",
]


# ---------------------------------------------------------------------------------------------- ResNet


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with bottleneck blocks; the defaults are ResNet-50 (blocks (3, 4, 6, 3), width 64)."""

    def __init__(
        self,
        blocks: tuple[int, ...] = (3, 4, 6, 3),
        base_width: int = 64,
        num_classes: int = 1000,
        image_size: int = 224,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.conv1 = nn.Conv2d(3, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers: list[nn.Module] = []
        in_channels = base_width
        for stage, n_blocks in enumerate(blocks):
            width = base_width * 2**stage
            for i in range(n_blocks):
                layers.append(Bottleneck(in_channels, width, stride=2 if (i == 0 and stage > 0) else 1))
                in_channels = width * Bottleneck.expansion
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layers(x)
        return self.fc(torch.flatten(self.pool(x), 1))

    def example_inputs(self, batch_size: int = 1, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> tuple:
        return (torch.zeros(batch_size, 3, self.image_size, self.image_size, device=device, dtype=dtype),)


# ----------------------------------------------------------------------------------------- Transformer


class DecoderBlock(nn.Module):
    """Pre-LayerNorm GPT-2 block: causal multi-head self-attention and a 4x GELU MLP (Radford et al. 2019)."""

    def __init__(self, d_model: int, n_heads: int, max_seq_len: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * d_model, d_model)
        mask = torch.ones(max_seq_len, max_seq_len, dtype=torch.bool).triu(1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq = x.size(0), x.size(1)
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        q = q.reshape(batch, seq, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.reshape(batch, seq, self.n_heads, self.head_dim).transpose(1, 2)
        v = v.reshape(batch, seq, self.n_heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        # The mask is not sliced to ``seq``: symbolic tracing cannot slice a constant with a traced
        # length, so sequences must be exactly ``max_seq_len`` long (``example_inputs`` makes them so).
        scores = scores.masked_fill(self.causal_mask, float("-inf"))
        attn = torch.matmul(F.softmax(scores, dim=-1), v)
        attn = attn.transpose(1, 2).reshape(batch, seq, self.n_heads * self.head_dim)
        x = x + self.proj(attn)
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class TransformerDecoder(nn.Module):
    """A GPT-style decoder-only language model: token + learned position embeddings, a stack of
    :class:`DecoderBlock`, final LayerNorm and an untied LM head."""

    def __init__(
        self,
        vocab_size: int = 8192,
        d_model: int = 512,
        n_heads: int = 8,
        n_layers: int = 12,
        seq_len: int = 1024,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Parameter(torch.zeros(seq_len, d_model))
        self.blocks = nn.Sequential(*[DecoderBlock(d_model, n_heads, seq_len) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(tokens) + self.pos_emb  # tokens: (batch, seq_len) exactly
        return self.head(self.ln_f(self.blocks(x)))

    def example_inputs(self, batch_size: int = 1, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> tuple:
        del dtype  # token ids are integers whatever the model's dtype
        return (torch.zeros(batch_size, self.seq_len, device=device, dtype=torch.long),)


# ----------------------------------------------------------------------------------------- MLP-Mixer


class MixerBlock(nn.Module):
    """Token-mixing MLP then channel-mixing MLP, each pre-LayerNorm with a residual
    (Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021)."""

    def __init__(self, n_tokens: int, channels: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(channels)
        self.token_fc1 = nn.Linear(n_tokens, token_hidden)
        self.token_act = nn.GELU()
        self.token_fc2 = nn.Linear(token_hidden, n_tokens)
        self.ln2 = nn.LayerNorm(channels)
        self.channel_fc1 = nn.Linear(channels, channel_hidden)
        self.channel_act = nn.GELU()
        self.channel_fc2 = nn.Linear(channel_hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, tokens, channels)
        y = self.ln1(x).transpose(1, 2)
        y = self.token_fc2(self.token_act(self.token_fc1(y)))
        x = x + y.transpose(1, 2)
        return x + self.channel_fc2(self.channel_act(self.channel_fc1(self.ln2(x))))


class MLPMixer(nn.Module):
    """MLP-Mixer; the defaults are Mixer-B/16 (Tolstikhin et al. 2021, Table 1) on 224x224 images."""

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        channels: int = 768,
        depth: int = 12,
        token_hidden: int = 384,
        channel_hidden: int = 3072,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
        self.image_size = image_size
        n_tokens = (image_size // patch_size) ** 2
        self.stem = nn.Conv2d(3, channels, patch_size, stride=patch_size)
        self.blocks = nn.Sequential(
            *[MixerBlock(n_tokens, channels, token_hidden, channel_hidden) for _ in range(depth)]
        )
        self.ln = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        x = self.ln(self.blocks(x))
        return self.head(x.mean(dim=1))

    def example_inputs(self, batch_size: int = 1, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> tuple:
        return (torch.zeros(batch_size, 3, self.image_size, self.image_size, device=device, dtype=dtype),)


# -------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class TorchModelSpec:
    """A registered model: how to build it, its default batch size, one line about it."""

    build: Callable[[], nn.Module]
    default_batch_size: int
    description: str


#: Default batch sizes put bf16 peak live bytes at ~2-4x the TPU-like preset's 128 MiB (see report).
TORCH_MODELS: dict[str, TorchModelSpec] = {
    "resnet": TorchModelSpec(ResNet, 64, "ResNet-50 (bottleneck, 224x224 images), inference"),
    "transformer": TorchModelSpec(TransformerDecoder, 8, "GPT-style decoder: 12 layers, d=512, 8 heads, 1024 tokens"),
    "mlp_mixer": TorchModelSpec(MLPMixer, 128, "MLP-Mixer-B/16 on 224x224 images, inference"),
}


def load_torch_instance(
    model_name: str,
    hardware: str | HardwarePreset = "tpu_like",
    capacity: int | float | None = None,
    batch_size: int | None = None,
    dtype: torch.dtype = torch.bfloat16,
) -> Instance:
    """Extract the instance of a registered model, as used by ``instance="torch:<model_name>"``.

    Args:
        model_name: a key of :data:`TORCH_MODELS`.
        hardware: ``"tpu_like"``, ``"gpu_like"`` or a ``HardwarePreset``.
        capacity: ``None`` -> the preset's fast memory; int bytes; float in (0, 1] -> fraction of peak
            live bytes.
        batch_size: default: the model's ``default_batch_size``.
        dtype: floating-point dtype of parameters and activations (bf16 by default).
    """
    if model_name not in TORCH_MODELS:
        raise ValueError(f"unknown torch model {model_name!r}; valid names: {sorted(TORCH_MODELS)}")
    spec = TORCH_MODELS[model_name]
    if batch_size is None:
        batch_size = spec.default_batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    with torch.device("meta"):  # no weights allocated: only shapes matter
        model = spec.build()
    model = model.to(dtype).eval()
    inputs = model.example_inputs(batch_size=batch_size, device="meta", dtype=dtype)  # type: ignore[operator]
    return from_torch(model, inputs, hardware=hardware, capacity=capacity, name=f"torch:{model_name}")
