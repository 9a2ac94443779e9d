"""Experiments: pipelines/*.yaml files that `ragkit run` carries out (ingest → SFT data → train →
eval → report), as opposed to `ragkit.Pipeline`, the answer path that ask, eval and serve share.

    config.py  the typed experiment file (ExperimentConfig), `--set` overrides, load_experiment
    steps.py   the run directory, the up-to-date check of each step, run_experiment
    sweep.py   a `sweep:` block: cells that share cached steps (load_sweep, run_sweep, StepCache)
    sweep_report.py  `ragkit report` on a sweep: cells side by side, sweep.{md,json,png}

    from ragkit.experiment import load_experiment, run_experiment
    result = run_experiment(load_experiment("pipelines/sample-quick.yaml", ["eval.limit=5"]))
"""

from .config import ExperimentConfig, load_experiment
from .steps import run_experiment

__all__ = ["ExperimentConfig", "load_experiment", "run_experiment"]
