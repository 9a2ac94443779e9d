"""Defect 4 of issue 14: resuming training ran code from a planted trainer_state.pt."""

import pickle
import random

import pytest

from ragkit.errors import DataFormatError
from ragkit.train.checkpoints import load_checkpoint, load_trainer_state


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # creating the marker file proves the pickle ran


def test_a_planted_pickle_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "step-10"
    ckpt.mkdir()
    with (ckpt / "trainer_state.pt").open("wb") as f:
        pickle.dump({"optimizer": _Evil(str(marker))}, f)
    with pytest.raises(DataFormatError, match="refusing to load it"):
        load_checkpoint(ckpt, model=None, optimizer=None, scheduler=None, scaler=None)
    assert not marker.exists()


def test_trainer_state_round_trips_with_plain_types(tmp_path):
    import torch

    model = torch.nn.Linear(3, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "scaler": None,
                "torch_rng": torch.get_rng_state(), "py_rng": random.getstate(), "cuda_rng": None},
               tmp_path / "trainer_state.pt")
    blob = load_trainer_state(tmp_path)
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 3).parameters(), lr=1e-3)
    opt2.load_state_dict(blob["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == 1
    (tmp_path / "trainer_state.pt").write_bytes(b"garbage")
    with pytest.raises(DataFormatError):
        load_trainer_state(tmp_path)
