"""Sweeps: one experiment file with a `sweep:` block, which `ragkit run` expands into cells, each a
whole experiment, that share the steps they have in common.

    sweep:
      base: {train.options.epochs: 2}          # dotted settings every cell shares (like --set)
      cells:                                   # an explicit list (a fractional design) ...
        - {name: center}
        - {name: mix25, set: {sft_data.mix_ratio: 0.25}}
      # grid: {train.options.lr: [1e-4, 1e-3], sft_data.options.paraphrases: [0, 2]}   # ... or the full product

A cell's settings are the file's, then `base`, then the command line's `--set`, then the cell's
own `set` (relative paths in the file, `base` and `set` are relative to the file). Each cell is
validated by ExperimentConfig; a bad key names the cell and the key in one sentence.

Layout of runs/<name>/ (one directory per sweep, no timestamp: running it again continues it):

    design.json               the design: every cell's name, own settings, directory and resolved config
    cells/<cell>/             a run directory like `ragkit run`'s (config.yaml, state.json, eval/ ...)
                              whose index/, sft/ and adapters/ are links into cache/
    cache/<step>-<hash>/      the output of ingest, sft_data or train for one input hash (the hash
                              the run directory's state.json already keys steps by), and done.json
                              once it finished

A cell whose step hash has a done.json links to it and skips the step, so N cells run ingest once
and train once per distinct (sft data, train settings). A step interrupted half-way has no
done.json: the next cell (or the next `ragkit run`) with that hash links to the same directory
and the step resumes there (ingest from its staging, train from its checkpoints, eval per item).
Cells run one after another (one machine, 2 cores); two `ragkit run`s of one sweep at once are
not supported. The base model's closed_book answers are the same in every cell with the same eval
settings, so a cell's eval starts with those rows of an earlier cell (seed_base_answers): the base
arm costs one pass per sweep instead of one per cell (~80 answers × ~2 s saved per cell here).

    from ragkit.experiment.sweep import load_sweep, run_sweep
    run_sweep(load_sweep("pipelines/sft-sweep.yaml"), "runs", cells=["center"])
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RagkitError, UsageError
from ..eval.arms import arms_where
from .config import ExperimentConfig, apply_override, read_experiment_file, resolve_paths
from .steps import run_experiment

STEP_OUTPUTS = {"ingest": "index", "sft_data": "sft", "train": "adapters",  # shared steps, their folder
                "raft_data": "raft", "raft_train": "adapters-raft"}
DONE = "done.json"
DESIGN = "design.json"  # in the sweep directory; `ragkit report` writes sweep.{md,json,png} beside it
BASE_ARMS = arms_where(lambda a: a.base_only)  # answers that depend on the base model and eval settings only
RUN_DIR_MARK = "{run_dir}/"  # done.json stores paths inside the run directory relative to it
CELL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class Cell:
    name: str
    set: dict  # the cell's own dotted settings
    config: ExperimentConfig


@dataclass
class Sweep:
    name: str
    path: Path
    base: dict
    cells: list[Cell] = field(default_factory=list)

    def cell_names(self) -> list[str]:
        return [c.name for c in self.cells]

    def select(self, names: list[str] | None) -> list[Cell]:
        if not names:
            return list(self.cells)
        unknown = [n for n in names if n not in self.cell_names()]
        if unknown:
            raise UsageError(f"unknown cell(s) {', '.join(unknown)}; {self.name} has {', '.join(self.cell_names())}")
        return [c for c in self.cells if c.name in names]


class StepCache:
    """cache/<step>-<hash>/ directories shared by the cells of a sweep (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def shares(self, step: str) -> bool:
        return step in STEP_OUTPUTS

    def step_dir(self, step: str, h: str) -> Path:
        return self.root / f"{step}-{h[:16]}"

    def linked(self, step: str, h: str, run_dir: Path) -> bool:
        """run_dir's output folder of `step` is the finished cache directory of hash `h`."""
        link, d = Path(run_dir) / STEP_OUTPUTS[step], self.step_dir(step, h)
        return link.is_symlink() and link.resolve() == (d / STEP_OUTPUTS[step]).resolve() and (d / DONE).is_file()

    def attach(self, step: str, h: str, run_dir: Path) -> dict | None:
        """Point run_dir/<output> at the cache directory of `h`; its step info if that step finished."""
        run_dir, d = Path(run_dir), self.step_dir(step, h)
        target = d / STEP_OUTPUTS[step]
        target.mkdir(parents=True, exist_ok=True)
        link = run_dir / STEP_OUTPUTS[step]
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            raise RagkitError(f"{link} is a folder of its own, not a link into {self.root}; move it away "
                              "and run the sweep again")
        link.symlink_to(os.path.relpath(target, run_dir), target_is_directory=True)
        if not (d / DONE).is_file():
            return None
        return json.loads((d / DONE).read_text(encoding="utf-8").replace(RUN_DIR_MARK, _in_json(run_dir)))["info"]

    def reuse(self, step: str, h: str, run_dir: Path, state) -> dict | None:
        """Attach run_dir to the cache directory of `h`; when that step finished there, record it in
        the run's state (with the seconds it took where it ran) and return the state entry."""
        hit = self.attach(step, h, run_dir)
        if hit is None:
            return None
        state.mark(step, h, hit.pop("seconds", 0.0), cached=True, **hit)
        return state.data["steps"][step]

    def finish(self, step: str, h: str, run_dir: Path, entry: dict) -> None:
        """Record that `step` finished for hash `h` (entry: the run's state.json entry of the step)."""
        info = {k: v for k, v in entry.items() if k not in ("status", "hash", "cached")}
        text = json.dumps({"step": step, "hash": h, "made_by": Path(run_dir).name, "info": info},
                          ensure_ascii=False, indent=2)
        text = text.replace(_in_json(run_dir), RUN_DIR_MARK)
        d = self.step_dir(step, h)
        tmp = d / (DONE + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(d / DONE)


def _in_json(run_dir: Path) -> str:
    """"<run_dir>/" as it appears inside a JSON string written with ensure_ascii=False."""
    return json.dumps(str(run_dir) + "/", ensure_ascii=False)[1:-1]


# -- loading -------------------------------------------------------------------------------------
def is_sweep(path: str | Path) -> bool:
    """Whether the experiment file has a `sweep:` block (unreadable files are load_experiment's to report)."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(raw, dict) and "sweep" in raw


def set_key(d: dict, key: str, value, where: str) -> None:
    """d[a][b][c] = value for key "a.b.c" (a value already read from YAML, unlike apply_override's)."""
    parts = str(key).strip().split(".")
    if not all(parts):
        raise UsageError(f"{where}: '{key}' is not a setting name (use dotted keys like train.options.lr)")
    node = d
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}
        if not isinstance(node[p], dict):
            raise UsageError(f"{where}: {key}: '{p}' is not a section")
        node = node[p]
    node[parts[-1]] = copy.deepcopy(value)


def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", str(value)).strip("-") or "x"


def grid_cells(grid: dict, where: str) -> list[dict]:
    """The full product of `grid` ({key: [values]}) as cells named like lr-0.0001_paraphrases-2."""
    if not isinstance(grid, dict) or not grid:
        raise UsageError(f"{where}: grid must map setting names to lists of values")
    for k, vs in grid.items():
        if not isinstance(vs, list) or not vs:
            raise UsageError(f"{where}: grid.{k} must be a non-empty list of values")
    short = [str(k).split(".")[-1] for k in grid]
    labels = short if len(set(short)) == len(short) else [str(k) for k in grid]
    return [{"name": "_".join(f"{lab}-{_slug(v)}" for lab, v in zip(labels, combo)), "set": dict(zip(grid, combo))}
            for combo in itertools.product(*grid.values())]


def cell_specs(block: object, where: str) -> tuple[dict, list[dict]]:
    """(base, [{name, set}, ...]) from a `sweep:` block, checked."""
    if not isinstance(block, dict) or set(block) - {"base", "cells", "grid"}:
        extra = sorted(set(block) - {"base", "cells", "grid"}) if isinstance(block, dict) else []
        raise UsageError(f"{where}: sweep must be a mapping with base and cells or grid"
                         + (f" (unknown: {', '.join(map(str, extra))})" if extra else ""))
    if ("cells" in block) == ("grid" in block):
        raise UsageError(f"{where}: sweep needs exactly one of cells (a list) or grid (key: [values])")
    base = block.get("base") or {}
    if not isinstance(base, dict):
        raise UsageError(f"{where}: sweep.base must map setting names to values")
    if "grid" in block:
        return base, grid_cells(block["grid"], where)
    cells = block["cells"]
    if not isinstance(cells, list) or not cells:
        raise UsageError(f"{where}: sweep.cells must be a non-empty list of {{name, set}} mappings")
    out = []
    for i, c in enumerate(cells, 1):
        if not isinstance(c, dict) or set(c) - {"name", "set"} or not isinstance(c.get("set") or {}, dict):
            raise UsageError(f"{where}: sweep.cells[{i}] must be a mapping with name and set {{key: value}}")
        own = c.get("set") or {}
        name = c.get("name") or ("_".join(f"{str(k).split('.')[-1]}-{_slug(v)}" for k, v in own.items()) or "base")
        out.append({"name": str(name), "set": own})
    return base, out


def load_sweep(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Read a sweep file and expand it into validated cells; UsageError naming the cell on any problem."""
    path = Path(path)
    raw = read_experiment_file(path)
    if not isinstance(raw, dict) or "sweep" not in raw:
        raise UsageError(f"{path} has no sweep: block; run it as a single experiment")
    raw = dict(raw)
    base, specs = cell_specs(raw.pop("sweep"), str(path))
    name = raw.get("name")
    if not isinstance(name, str) or not CELL_NAME.fullmatch(name):
        raise UsageError(f"{path}: name must be letters, digits, '-', '_' or '.', e.g. sft-sweep")
    names = [s["name"] for s in specs]
    for n in names:
        if not CELL_NAME.fullmatch(n):
            raise UsageError(f"{path}: cell '{n}': name must be letters, digits, '-', '_' or '.'")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"{path}: cell name(s) {', '.join(dup)} appear more than once")
    sweep = Sweep(name=name, path=path, base=base)
    for spec in specs:
        d = copy.deepcopy(raw)
        where = f"{path}: sweep.base"
        for k, v in base.items():
            set_key(d, k, v, where)
        resolve_paths(d, path.parent)
        for o in overrides:
            apply_override(d, o)
        for k, v in spec["set"].items():
            set_key(d, k, v, f"{path}: cell '{spec['name']}'")
        resolve_paths(d, path.parent)  # paths in the cell's set; absolute ones stay as they are
        d["name"] = f"{name}.{spec['name']}"
        try:
            cfg = ExperimentConfig.check(d)
        except UsageError as e:
            raise type(e)(f"{path}: cell '{spec['name']}': {e}") from None
        sweep.cells.append(Cell(spec["name"], dict(spec["set"]), cfg))
    return sweep


# -- running -------------------------------------------------------------------------------------
def sweep_dir(sweep: Sweep, runs_dir: str | Path) -> Path:
    return Path(runs_dir) / sweep.name


def write_design(sweep: Sweep, root: Path) -> None:
    design = {"name": sweep.name, "file": str(sweep.path.resolve()), "base": sweep.base,
              "cells": [{"name": c.name, "set": c.set, "dir": f"cells/{c.name}", "config": c.config.to_dict()}
                        for c in sweep.cells]}
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (DESIGN + ".tmp")
    tmp.write_text(json.dumps(design, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    tmp.replace(root / DESIGN)


def cell_summary(result: dict) -> dict:
    """What `ragkit run --json` prints for one cell: steps, accuracy per arm, retention when present."""
    report = result.get("report") or {}
    arms = {a: {"accuracy": s.get("accuracy"), "ci95": (s.get("ci95") or {}).get("accuracy"), "n": s.get("n")}
            for a, s in (report.get("arms") or {}).items()}
    out = {"run_dir": result["run_dir"], "steps": result["steps"], "arms": arms}
    if report.get("retention"):
        out["retention"] = {a: {k: s.get(k) for k in ("accuracy", "ci95", "n")} for a, s in report["retention"].items()}
    if report.get("forgetting"):
        out["forgetting"] = report["forgetting"]
    return out


def eval_settings(config: dict) -> dict:
    """What decides a base arm's answers: the eval section but its arms and limit, and the bench."""
    return {"eval": {k: v for k, v in (config.get("eval") or {}).items() if k not in ("arms", "limit")},
            "bench": config.get("bench")}


def seed_base_answers(root: Path, cell: Cell) -> int:
    """Copy the finished base-arm rows (BASE_ARMS) of earlier cells with the same eval settings into
    this cell's eval folder before its eval runs, so the base model answers each item once per sweep,
    not once per cell. The runner reuses a row only when its key (arm, question, model, decoding)
    matches, so a copied row can never stand in for a different answer. Returns rows copied."""
    import yaml

    out = root / "cells" / cell.name / "eval"
    if out.exists():
        return 0  # started before: its own rows (and any seeded ones) are there
    want = eval_settings(cell.config.to_dict())
    for donor in sorted((root / "cells").glob("*/eval")):
        cfg_file = donor.parent / "config.yaml"
        if not cfg_file.is_file() or eval_settings(yaml.safe_load(cfg_file.read_text(encoding="utf-8"))) != want:
            continue
        copied = 0
        for f in sorted(donor.glob("*items*.jsonl")):
            if f.name.startswith("retrieval"):
                continue  # recomputed by every eval
            rows = [line for line in f.read_text(encoding="utf-8").splitlines()
                    if line.strip() and _arm_of(line) in BASE_ARMS]
            if rows:
                out.mkdir(parents=True, exist_ok=True)
                (out / f.name).write_text("\n".join(rows) + "\n", encoding="utf-8")
                copied += len(rows)
        if copied:
            return copied
    return 0


def _arm_of(line: str) -> str | None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row.get("arm") if isinstance(row, dict) else None


def run_sweep(
    sweep: Sweep,
    runs_dir: str | Path = "runs",
    *,
    cells: list[str] | None = None,
    progress=None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the chosen cells (all by default) one after another; return {sweep_dir, cells: {name: summary}}."""
    log = log or (lambda m: None)
    chosen = sweep.select(cells)
    root = sweep_dir(sweep, runs_dir)
    write_design(sweep, root)
    cache = StepCache(root / "cache")
    out: dict = {"sweep_dir": str(root), "cells": {}}
    for i, cell in enumerate(chosen, 1):
        label = f"cell {i}/{len(chosen)} {cell.name}"
        own = ", ".join(f"{k}={v}" for k, v in cell.set.items()) or "the base settings"
        log(f"== {label}: {own}")
        seeded = seed_base_answers(root, cell)
        if seeded:
            log(f"[{label}] reusing {seeded} base-model answer(s) of earlier cells")
        try:
            result = run_experiment(cell.config, run_dir=root / "cells" / cell.name, cache=cache,
                                    progress=progress, log=lambda m, lab=label: log(f"[{lab}] {m}"))
        except RagkitError as e:
            raise type(e)(f"cell '{cell.name}': {e}") from None
        out["cells"][cell.name] = cell_summary(result)
    return out


def sweep_name(path: str | Path) -> str:
    """The `name:` of a sweep file, checked as load_sweep checks it."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not CELL_NAME.fullmatch(name):
        raise UsageError(f"{path}: name must be letters, digits, '-', '_' or '.', e.g. sft-sweep")
    return name
