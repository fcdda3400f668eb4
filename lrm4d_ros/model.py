"""The 4D-LRM transformer (docs/design.md §1), in the spirit of nanoGPT's model.py: one config, one forward.

Per view a map of input channels at H×W — RGB in [-1,1], the Plücker ray (6) in the canonical frame, the view's
normalised time, and the geometry a small model cannot afford to learn: measured depth with its validity mask
(RGB-D cameras; zeros where absent) —
patch_size² patches (16 px in the small preset) -> Linear -> LayerNorm, no positional embedding (rays carry the geometry), pre-LN transformer blocks
over the tokens of all views and times, then LayerNorm -> Linear "unpatchify" to per-pixel raw channels, which
pixel_gaussians.py turns into 4D Gaussians (surfels at their depth, anchored at their view's time). One scene per
forward; any number of views, any resolution divisible by the patch size.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .pixel_gaussians import MID_DEPTH, PAPER_CHANNELS, PAPER_INIT, SURFEL_CHANNELS

HEADS = ("surfel", "paper")


@dataclass(frozen=True)
class LRM4DConfig:
    n_layer: int = 6
    n_embd: int = 256
    n_head: int = 4
    patch_size: int = 8
    mlp_ratio: float = 4.0
    grad_checkpointing: bool = False
    image_size: int = 128  # input resolution (short side, pixels) the Reconstructor resizes views to
    head: str = "surfel"  # pixel_gaussians.surfel_gaussians, or the paper's 20-channel activations
    depth_input: bool = True  # measured depth + validity as input channels (zeros for RGB-only views)
    environment: bool = True  # renders composite over an environment map of the inputs (environment.py)

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if min(self.n_layer, self.n_embd, self.n_head, self.patch_size, self.image_size) < 1:
            raise ValueError(f"invalid LRM4DConfig {self}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.head not in HEADS:
            raise ValueError(f"invalid LRM4DConfig {self}: head in {HEADS}")

    @property
    def in_channels(self) -> int:
        return 10 + 2 * self.depth_input

    @property
    def out_channels(self) -> int:
        return SURFEL_CHANNELS if self.head == "surfel" else PAPER_CHANNELS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LRM4DConfig":
        if "head" not in d:
            raise ValueError("this checkpoint predates the surfel head (lrm4d_ros < 0.2) and cannot be loaded; "
                             "use the shipped checkpoint or retrain")
        if d.get("prior_planes", 0):
            raise ValueError("this checkpoint has the plane-sweep depth prior, since removed (constant start "
                             "depths trained better and faster); it cannot be loaded: use the shipped checkpoint "
                             "or retrain")
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @classmethod
    def preset(cls, name: str, **overrides) -> "LRM4DConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS = {
    "tiny": LRM4DConfig(n_layer=2, n_embd=64, n_head=2, image_size=32),
    "small": LRM4DConfig(n_layer=6, n_embd=256, n_head=4, patch_size=16),
    "base": LRM4DConfig(n_layer=12, n_embd=768, n_head=12, grad_checkpointing=True, image_size=256),
    "large": LRM4DConfig(n_layer=24, n_embd=1024, n_head=16, grad_checkpointing=True, image_size=256),
}


class SelfAttention(nn.Module):
    def __init__(self, cfg: LRM4DConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.n_head, D // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # flash / memory-efficient kernel where available
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN x), then x + MLP(LN x) with GELU."""

    def __init__(self, cfg: LRM4DConfig):
        super().__init__()
        hidden = int(cfg.mlp_ratio * cfg.n_embd)
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, hidden), nn.GELU(), nn.Linear(hidden, cfg.n_embd))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


BF16_CHOICES = {"auto": None, "on": True, "off": False}  # command lines' and the node's `bf16` -> Reconstructor's


def bf16_native(device: str | torch.device) -> bool:
    """True where bf16 autocast pays off for the transformer: CUDA, or a CPU that computes bf16 matrix products
    natively (AVX512-BF16 / AMX)."""
    if torch.device(device).type == "cuda":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def config_of(model: nn.Module) -> LRM4DConfig:
    """The config of an LRM4D, also one wrapped in DistributedDataParallel (which hides it under `.module`)."""
    return getattr(model, "module", model).cfg


class ModelOutput(dict):
    """raw (V,H,W,out_channels) per-pixel head output."""

    __getattr__ = dict.__getitem__


class LRM4D(nn.Module):
    """Posed, timestamped views of one scene (+ optional depth) -> per-pixel raw 4D Gaussian parameters."""

    def __init__(self, cfg: LRM4DConfig):
        super().__init__()
        self.cfg = cfg
        p, D = cfg.patch_size, cfg.n_embd
        self.patch_embed = nn.Linear(cfg.in_channels * p * p, D)
        self.ln_in = nn.LayerNorm(D)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(D)
        self.unpatchify = nn.Linear(D, cfg.out_channels * p * p)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # GPT-2 style: residual projections scaled by depth so the stream's variance stays bounded.
        for blk in self.blocks:
            for lin in (blk.attn.proj, blk.mlp[2]):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * self.cfg.n_layer))
        # A small head: the untrained model's Gaussians are those of zero output (the surfel head's non-learned
        # splat of the inputs; the paper head's small, long-lived, faint splats).
        nn.init.normal_(self.unpatchify.weight, std=1e-3)
        if self.cfg.head == "paper":
            bias = torch.zeros(PAPER_CHANNELS)
            bias[7:10], bias[10], bias[19] = PAPER_INIT["scale_xyz"], PAPER_INIT["scale_t"], PAPER_INIT["opacity"]
            with torch.no_grad():
                self.unpatchify.bias.copy_(bias.repeat(self.cfg.patch_size ** 2))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, images: Tensor, plucker: Tensor, times: Tensor, depths: Tensor | None = None) -> ModelOutput:
        """One scene: images (V,H,W,3) in [0,1]; plucker (V,H,W,6) rays in the canonical frame; times (V,)
        normalised; depths (V,H,W) measured z-depth in canonical units, 0 = none (or None)."""
        V, H, W, _ = images.shape
        p, cfg = self.cfg.patch_size, self.cfg
        if images.ndim != 4 or images.shape[-1] != 3 or plucker.shape != (V, H, W, 6) or times.shape != (V,):
            raise ValueError(f"need images (V,H,W,3), plucker (V,H,W,6), times (V,); got {tuple(images.shape)}, "
                             f"{tuple(plucker.shape)}, {tuple(times.shape)}")
        if H % p or W % p:
            raise ValueError(f"resolution {H}x{W} is not divisible by the patch size {p}")
        if depths is not None and depths.shape != (V, H, W):
            raise ValueError(f"depths must be (V,H,W)={(V, H, W)}, got {tuple(depths.shape)}")
        chans = [images * 2.0 - 1.0, plucker.to(images.dtype), times[:, None, None, None].to(images.dtype)
                 .expand(V, H, W, 1)]
        if cfg.depth_input:
            valid = (depths > 0) if depths is not None else images.new_zeros(V, H, W, dtype=torch.bool)
            logd = torch.where(valid, (depths.clamp_min(1e-6).log() - math.log(MID_DEPTH)) if depths is not None
                               else images.new_zeros(V, H, W), images.new_zeros(V, H, W))
            chans += [logd[..., None].to(images.dtype), valid[..., None].to(images.dtype)]
        x = torch.cat(chans, -1)  # (V,H,W,C)
        C = x.shape[-1]
        h, w = H // p, W // p
        patches = x.reshape(V, h, p, w, p, C).permute(0, 1, 3, 5, 2, 4).reshape(1, V * h * w, C * p * p)
        tokens = self.ln_in(self.patch_embed(patches))
        for blk in self.blocks:
            if cfg.grad_checkpointing and self.training:
                tokens = checkpoint(blk, tokens, use_reentrant=False)
            else:
                tokens = blk(tokens)
        out = self.unpatchify(self.ln_out(tokens))  # (1, V·h·w, p·p·K)
        K = cfg.out_channels
        raw = out.reshape(V, h, w, p, p, K).permute(0, 1, 3, 2, 4, 5).reshape(V, H, W, K)
        return ModelOutput(raw=raw)
