"""The 4D-LRM transformer (DESIGN.md §1), in the spirit of nanoGPT's model.py: one config, one forward.

Input per view: a 10-channel map [RGB in [-1,1], Plücker ray (6) in the canonical frame, normalised time].
8×8 patches -> Linear(10·64 -> D) -> LayerNorm, no positional embedding (rays carry the geometry), optional
learnable free-Gaussian tokens appended, pre-LN transformer blocks, then
image tokens -> LayerNorm -> Linear "unpatchify" to 20 raw channels per pixel and free tokens -> Linear to 20.
Raw channels are turned into Gaussians by `Gaussians4D.from_raw` (gaussians.py owns the activations).
Any number of views, any resolution divisible by the patch size, in one forward.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .gaussians import RAW_CHANNELS

IN_CHANNELS = 10  # RGB 3 + Plücker 6 + time 1

# Raw-channel layout (gaussians.py): [xyz 3, t 1, rgb 3, scale_xyz 3, scale_t 1, q_l 4, q_r 4, opacity 1].
_RGB, _SCALE_XYZ, _SCALE_T, _OPACITY = slice(4, 7), slice(7, 10), slice(10, 11), slice(19, 20)


@dataclass(frozen=True)
class LRM4DConfig:
    n_layer: int = 6
    n_embd: int = 256
    n_head: int = 4
    patch_size: int = 8
    n_free_tokens: int = 0
    mlp_ratio: float = 4.0
    grad_checkpointing: bool = False
    image_size: int = 64  # input resolution (short side, pixels) the Reconstructor resizes views to
    # Output-head biases that make the untrained model's Gaussians sensible (raw units, before activation):
    # small splats (~0.014 canonical units, about a pixel at 64²), visible over the whole window, and nearly
    # transparent (opacity 0.018), so training starts from "background only" and renders cheaply.
    init_scale_xyz: float = -2.0
    init_scale_t: float = 2.0
    init_opacity: float = -2.0
    # Departures from the paper for small compute (gaussians.Gaussians4D.from_raw explains both): pixel-aligned
    # time centres are offsets from their view's time, and splats are at least `scale_floor_px` input pixels wide.
    # Checkpoints written before these fields existed load with both off (LEGACY), i.e. the paper's activations.
    time_offset: bool = True
    scale_floor_px: float = 0.5
    # Pixel-aligned colours are residuals on their input pixel's colour (Gaussians4D.from_raw, pixel_colors).
    color_skip: bool = False
    # Pixel-aligned temporal scales are at least time_floor × the mean spacing of the input views' times
    # (Gaussians4D.from_raw, time_floor).
    time_floor: float = 0.0

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if min(self.n_layer, self.n_embd, self.n_head, self.patch_size) < 1 or self.image_size % self.patch_size or self.n_free_tokens < 0:
            raise ValueError(f"invalid LRM4DConfig {self}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LRM4DConfig":
        known = {**LEGACY, **{k: v for k, v in d.items() if k in cls.__dataclass_fields__}}
        return cls(**known)

    @classmethod
    def preset(cls, name: str, **overrides) -> "LRM4DConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


# What configs without these keys meant.
LEGACY = {"time_offset": False, "scale_floor_px": 0.0, "color_skip": False, "time_floor": 0.0}

PRESETS = {
    "tiny": LRM4DConfig(n_layer=2, n_embd=64, n_head=2, image_size=32),
    "small": LRM4DConfig(n_layer=6, n_embd=256, n_head=4),
    "base": LRM4DConfig(n_layer=12, n_embd=768, n_head=12, n_free_tokens=1024, grad_checkpointing=True,
                        image_size=256),
    "large": LRM4DConfig(n_layer=24, n_embd=1024, n_head=16, n_free_tokens=1024, grad_checkpointing=True,
                         image_size=256),
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


def config_of(model: nn.Module) -> LRM4DConfig:
    """The config of an LRM4D, also one wrapped in DistributedDataParallel (which hides it under `.module`)."""
    return getattr(model, "module", model).cfg


def model_input(images: Tensor, plucker: Tensor, times: Tensor) -> Tensor:
    """Assemble the 10-channel input (B,V,10,H,W).

    images (B,V,H,W,3) RGB in [0,1]; plucker (B,V,H,W,6) in the canonical frame; times (B,V) normalised to [-1,1].
    """
    if images.shape[:-1] != plucker.shape[:-1] or images.shape[-1] != 3 or plucker.shape[-1] != 6:
        raise ValueError(f"images (B,V,H,W,3) and plucker (B,V,H,W,6) disagree: "
                         f"{tuple(images.shape)} vs {tuple(plucker.shape)}")
    if times.shape != images.shape[:2]:
        raise ValueError(f"times must be (B,V)={tuple(images.shape[:2])}, got {tuple(times.shape)}")
    t = times[:, :, None, None, None].to(images.dtype).expand(*images.shape[:-1], 1)
    x = torch.cat([images * 2.0 - 1.0, plucker.to(images.dtype), t], dim=-1)
    return x.permute(0, 1, 4, 2, 3).contiguous()


class LRM4D(nn.Module):
    """Posed, timestamped views -> raw 4D Gaussian parameters (pixel-aligned + free)."""

    def __init__(self, cfg: LRM4DConfig):
        super().__init__()
        self.cfg = cfg
        p, D = cfg.patch_size, cfg.n_embd
        self.patch_embed = nn.Linear(IN_CHANNELS * p * p, D)
        self.ln_in = nn.LayerNorm(D)
        self.free_tokens = nn.Parameter(torch.randn(cfg.n_free_tokens, D) * 0.02) if cfg.n_free_tokens else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(D)
        self.unpatchify = nn.Linear(D, RAW_CHANNELS * p * p)
        self.free_head = nn.Linear(D, RAW_CHANNELS) if cfg.n_free_tokens else None
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
        # Small output layers: the untrained model predicts the head biases, i.e. sensible Gaussians.
        p2 = self.cfg.patch_size ** 2
        heads = [(self.unpatchify, p2)] + ([(self.free_head, 1)] if self.free_head is not None else [])
        for head, reps in heads:
            nn.init.normal_(head.weight, std=1e-3)
            bias = torch.zeros(RAW_CHANNELS)
            bias[_SCALE_XYZ] = self.cfg.init_scale_xyz
            bias[_SCALE_T] = self.cfg.init_scale_t
            bias[_OPACITY] = self.cfg.init_opacity
            # unpatchify output is laid out (pixel-in-patch, channel): repeat the per-channel bias per pixel.
            with torch.no_grad():
                head.bias.copy_(bias.repeat(reps))

    def zero_color_head(self) -> None:
        """Zero the pixel head's colour outputs: with `color_skip` the Gaussians then start at their pixels'
        colours (used when fine-tuning weights trained without it, whose colour outputs mean absolute colours)."""
        rows = torch.arange(self.unpatchify.out_features) % RAW_CHANNELS
        sel = (rows >= _RGB.start) & (rows < _RGB.stop)
        with torch.no_grad():
            self.unpatchify.weight[sel] = 0.0
            self.unpatchify.bias[sel] = 0.0

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B,V,10,H,W) from `model_input` -> (pixel raw (B,V,H,W,20), free raw (B,n_free,20))."""
        if x.ndim != 5 or x.shape[2] != IN_CHANNELS:
            raise ValueError(f"input must be (B,V,{IN_CHANNELS},H,W), got {tuple(x.shape)}")
        B, V, C, H, W = x.shape
        p = self.cfg.patch_size
        if H % p or W % p:
            raise ValueError(f"resolution {H}x{W} is not divisible by the patch size {p}")
        h, w = H // p, W // p
        # (B,V,C,h,p,w,p) -> tokens (B, V·h·w, C·p·p)
        patches = x.reshape(B, V, C, h, p, w, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(B, V * h * w, C * p * p)
        tokens = self.ln_in(self.patch_embed(patches))
        n_img = tokens.shape[1]
        if self.free_tokens is not None:
            tokens = torch.cat([tokens, self.free_tokens[None].expand(B, -1, -1).to(tokens.dtype)], dim=1)
        for blk in self.blocks:
            if self.cfg.grad_checkpointing and self.training:
                tokens = checkpoint(blk, tokens, use_reentrant=False)
            else:
                tokens = blk(tokens)
        tokens = self.ln_out(tokens)
        img = self.unpatchify(tokens[:, :n_img])  # (B, V·h·w, p·p·20)
        img = img.reshape(B, V, h, w, p, p, RAW_CHANNELS).permute(0, 1, 2, 4, 3, 5, 6)
        img = img.reshape(B, V, H, W, RAW_CHANNELS)
        if self.free_head is not None:
            free = self.free_head(tokens[:, n_img:])
        else:
            free = img.new_zeros(B, 0, RAW_CHANNELS)
        return img, free
