"""Checkpoints of `ragkit train`: one per epoch plus the newest --save-every one, each written
beside its final place and renamed, so a checkpoint is either complete or absent.

Resuming never runs code from a file: the adapter is safetensors, state.json is JSON, and
trainer_state.pt (optimizer, scheduler, scaler, RNG states: tensors and plain values only) is
read with torch.load(weights_only=True), whose unpickler refuses anything but tensors, dicts,
lists, tuples, numbers and strings. A planted pickle that would call os.system is refused with
one sentence (tests/unit/test_checkpoints.py).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from ..errors import DataFormatError


def latest_checkpoint(out: Path) -> Path | None:
    found = [(json.loads((d / "state.json").read_text())["global_step"], d.name.startswith("epoch"), d)
             for d in (out / "checkpoints").glob("*") if (d / "state.json").is_file()]
    return max(found)[2] if found else None


def save_checkpoint(path: Path, model, optimizer, scheduler, scaler, state: dict) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "torch_rng": torch.get_rng_state(), "py_rng": random.getstate(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
               tmp / "trainer_state.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)  # a checkpoint is either complete or absent


def load_trainer_state(path: Path) -> dict:
    """trainer_state.pt as tensors and plain values; DataFormatError for anything else in it."""
    import pickle

    import torch

    f = path / "trainer_state.pt"
    try:
        blob = torch.load(f, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise DataFormatError(f"checkpoint {path} has no trainer_state.pt; it cannot be resumed") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DataFormatError(
            f"checkpoint {f} holds something other than tensors and plain values, or is damaged; refusing to "
            f"load it (nothing in it was run): {str(e).splitlines()[0][:160]}") from None
    keys = {"optimizer", "scheduler", "scaler", "torch_rng", "py_rng", "cuda_rng"}
    if not isinstance(blob, dict) or not keys <= set(blob):
        raise DataFormatError(f"checkpoint {f} is not a ragkit trainer state; it cannot be resumed")
    return blob


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler) -> dict:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    blob = load_trainer_state(path)  # first: a refused file leaves the model untouched
    set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    if scaler is not None and blob["scaler"]:
        scaler.load_state_dict(blob["scaler"])
    torch.set_rng_state(blob["torch_rng"])
    v, internal, gauss = blob["py_rng"]
    random.setstate((v, tuple(internal), gauss))
    if blob["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["cuda_rng"])
    return json.loads((path / "state.json").read_text())


def prune_step_checkpoints(out: Path, keep: str | None) -> None:
    """Drop step checkpoints but `keep` (epoch checkpoints stay)."""
    for old in (out / "checkpoints").glob("step-*"):
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
