"""What the experiment tests' stand-ins for the expensive steps share: how they are put in place.

A subclass defines ingest, sft_data, train and eval with the signatures of ragkit.experiment.steps'
step_ingest, step_sft_data, step_train and run_eval.
"""

from __future__ import annotations


class StepFakes:
    def install(self, monkeypatch):
        from ragkit.experiment import steps

        monkeypatch.setattr(steps, "step_ingest", self.ingest)
        monkeypatch.setattr(steps, "step_sft_data", self.sft_data)
        monkeypatch.setattr(steps, "step_train", self.train)
        monkeypatch.setattr(steps, "run_eval", self.eval)
        return self
