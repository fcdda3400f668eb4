"""Checkpoints as safetensors only (no pickle): model weights with the config JSON in the metadata, and
resumable training state (weights, flattened AdamW state, step, bookkeeping) in a second file. Both are written
readable by others (mode 0644): a checkpoint trained by one user is served by a node running as another."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .model import LRM4D, LRM4DConfig

FORMAT = "lrm4d_ros/1"
SHIPPED_NAME = "lrm4d_small.safetensors"


def shipped_checkpoint_path() -> Path:
    """Path of the checkpoint shipped inside the package (bf16 `small` model)."""
    return Path(__file__).resolve().parent / "checkpoints" / SHIPPED_NAME


def _metadata(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except SafetensorError as exc:  # not safetensors (an image, a truncated download, a pickle)
        raise ValueError(f"{path} is not a safetensors checkpoint ({exc})") from None
    if meta.get("format") != FORMAT or "config" not in meta:
        raise ValueError(f"{path} is not an lrm4d_ros checkpoint (metadata format {meta.get('format')!r})")
    return meta


def save_model(path: str | Path, model: LRM4D, dtype: torch.dtype | None = None,
               info: dict | None = None) -> Path:
    """Write the model's weights (cast to `dtype` if given, e.g. torch.bfloat16) and config to `path`.

    `info` (JSON-serialisable: training steps, data, wall time...) is stored in the metadata as well.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(model.cfg.to_dict()), "info": json.dumps(info or {})}
    # temp file + rename: a run killed while writing keeps the previous weights, not a truncated file
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)  # safetensors creates its files 0600
    tmp.replace(path)
    return path


def load_config(path: str | Path | None = None) -> tuple[LRM4DConfig, dict]:
    """(config, info) stored in a checkpoint, without reading the weights."""
    path = Path(path) if path is not None else shipped_checkpoint_path()
    meta = _metadata(path)
    return LRM4DConfig.from_dict(json.loads(meta["config"])), json.loads(meta.get("info", "{}"))


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> LRM4D:
    """Model from a checkpoint (None -> the shipped one), weights in float32 on `device`."""
    path = Path(path) if path is not None else shipped_checkpoint_path()
    if path.is_dir():
        found = [p.name for p in (path / "best.safetensors", path / "model.safetensors") if p.is_file()]
        raise ValueError(f"checkpoint {path} is a directory" + (f": give {path / found[0]}" if found else ""))
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if "step" in _metadata(path):
        raise ValueError(f"{path} is a training state (lrm4d train --resume reads it), not model weights: use "
                         f"{path.with_name('model.safetensors')} or {path.with_name('best.safetensors')}")
    cfg, _ = load_config(path)
    model = LRM4D(cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    model.load_state_dict(state)
    return model.to(device)


# --- resumable training state -------------------------------------------------------------------------------

def save_training_state(path: str | Path, model: LRM4D, optimizer: torch.optim.Optimizer, step: int,
                        extra: dict | None = None) -> Path:
    """Weights (float32), optimizer state flattened to `optim.<param index>.<key>` tensors, and param-group
    hyper-parameters, step and `extra` (JSON) in the metadata. Written atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for key, val in st.items():
            val = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"optim.{idx}.{key}"] = val.detach().cpu().contiguous()
    meta = {"format": FORMAT, "config": json.dumps(model.cfg.to_dict()), "step": str(int(step)),
            "param_groups": json.dumps(opt["param_groups"]), "extra": json.dumps(extra or {})}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return path


def training_state_info(path: str | Path) -> tuple[LRM4DConfig, int, dict]:
    """(model config, step, extra) of a state saved by save_training_state, from its metadata alone."""
    meta = _metadata(Path(path))
    if "step" not in meta:
        raise ValueError(f"{path} is model weights, not a training state")
    return LRM4DConfig.from_dict(json.loads(meta["config"])), int(meta["step"]), json.loads(meta.get("extra", "{}"))


def load_training_state(path: str | Path, model: LRM4D, optimizer: torch.optim.Optimizer) -> tuple[int, dict]:
    """Restore weights and optimizer state saved by save_training_state into `model` and `optimizer`.

    Returns (step, extra). The optimizer must have been built over the same parameters in the same order.
    """
    path = Path(path)
    meta = _metadata(path)
    tensors = load_file(str(path))
    device = next(model.parameters()).device
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val if key == "step" else val.to(device)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["step"]), json.loads(meta.get("extra", "{}"))
