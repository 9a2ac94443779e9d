"""Sweeps (ragkit.experiment.sweep): expansion and validation of the `sweep:` block, the shared step
cache (counted with fake steps: N cells sharing ingest → ingest ran once), an interrupted sweep
continuing where it stopped, `ragkit run --cells/--json`, and `ragkit report` on the sweep directory
(with report.json files that carry the retention/forgetting keys, and without them)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from step_fakes import StepFakes

from ragkit.cli import main
from ragkit.errors import UsageError
from ragkit.eval.report import arm_summary
from ragkit.experiment import steps
from ragkit.experiment.sweep import DONE, StepCache, load_sweep, run_sweep
from ragkit.experiment.sweep_report import sweep_report, write_sweep_report

CELLS = [
    {"name": "center"},
    {"name": "para0", "set": {"sft_data.options.paraphrases": 0}},
    {"name": "lr", "set": {"train.options.lr": 1.0e-4}},
    {"name": "qv", "set": {"train.options.target_modules": "q_proj,v_proj"}},
    {"name": "k3", "set": {"eval.k": 3}},  # same data and training as center: shares its adapter
]


def sweep_file(tmp_path: Path, **block) -> Path:
    (tmp_path / "corpus").mkdir(exist_ok=True)
    (tmp_path / "corpus" / "a.md").write_text("The X2 warranty is 24 months.\n")
    (tmp_path / "bench.jsonl").write_text(json.dumps(
        {"id": "1", "question": "How long is the X2 warranty?", "answers": ["24 months"], "sources": ["a.md"],
         "category": "knowledge", "difficulty": "easy"}) + "\n")
    p = tmp_path / "sw.yaml"
    p.write_text(yaml.safe_dump({
        "name": "sw", "corpus": "corpus", "bench": "bench.jsonl",
        "index": {"embed_model": "fake-embedder", "chunk_size": 32, "chunk_overlap": 4},
        "sft_data": {"options": {"tasks": "direct"}},
        "train": {"languages": ["en"], "export_gguf": False, "options": {"epochs": 1}},
        "eval": {"arms": ["closed_book", "sft"], "models": {"*": "fake"}, "mode": "bm25", "max_tokens": 8},
        "sweep": block or {"base": {"sft_data.options.paraphrases": 2, "train.options.epochs": 2,
                                    "train.options.target_modules": "all-linear"},
                           "cells": CELLS},
    }, sort_keys=False))
    return p


class FakeSteps(StepFakes):
    """Stand-ins for the four expensive steps that count their calls and write what the next step reads."""

    def __init__(self, retention: bool = True):
        self.calls: Counter = Counter()
        self.interrupt_train_at: int | None = None
        self.resumed_from_partial: list[str] = []
        self.retention = retention
        self.found_rows: dict[str, Counter] = {}  # cell -> rows per arm already in eval/items.jsonl


    def ingest(self, cfg, run_dir, progress):
        self.calls["ingest"] += 1
        (run_dir / "index" / "CURRENT").write_text("1")
        return {"chunks": 1, "files": 1}

    def sft_data(self, cfg, run_dir, bench, progress):
        self.calls["sft_data"] += 1
        assert (run_dir / "index" / "CURRENT").is_file()  # the shared index, through the link
        n = 10 * (1 + cfg.sft_data.options.paraphrases)
        (run_dir / "sft" / "qa.jsonl").write_text("{}\n" * n)
        return {"file": str(run_dir / "sft" / "qa.jsonl"), "rows": n}

    def train(self, cfg, run_dir, log, progress):
        self.calls["train"] += 1
        out = run_dir / "adapters" / "en"
        out.mkdir(parents=True, exist_ok=True)
        if (out / "partial").exists():
            self.resumed_from_partial.append(cfg.name)
        if self.calls["train"] == self.interrupt_train_at:
            (out / "partial").write_text("checkpoint")
            raise KeyboardInterrupt
        rows = len((run_dir / "sft" / "qa.jsonl").read_text().splitlines())
        (out / "train_summary.json").write_text(json.dumps({"data": {"train_examples": rows}}))
        return {"adapters": {"en": str(out)}}

    def eval(self, ecfg, progress=None, log=None):
        self.calls["eval"] += 1
        lr = float(ecfg.adapters["en"] and 1)  # any adapter: the sft arm "learned" a little
        rows = {arm: [{"id": str(i), "category": "knowledge", "difficulty": "easy", "latency_ms": 10,
                       "scores": {"accuracy": float(i % (3 if arm == "sft" else 4) == 0) * lr, "em": 0.0, "f1": 0.5,
                                  "refused": 0.0, "repetition": 0.0, "length": 3}} for i in range(12)]
                for arm in ecfg.arms}
        report = {"arms": {a: arm_summary(r, n_boot=50) for a, r in rows.items()}, "pairwise": {},
                  "retrieval": {}, "skipped_arms": {}, "notes": [], "config": {"n_items": 12}}
        if self.retention:
            report["retention"] = {"closed_book": {"accuracy": 0.9, "em": 0.8, "f1": 0.9, "n": 20, "ci95": [0.75, 1.0]},
                                   "sft": {"accuracy": 0.7, "em": 0.6, "f1": 0.7, "n": 20, "ci95": [0.5, 0.9]}}
            report["forgetting"] = {"sft": {"base": "closed_book", "diff": -0.2, "ci95": [-0.4, -0.05], "n": 20,
                                            "by_category": {"general": {"diff": -0.3, "ci95": [-0.5, -0.1], "n": 10},
                                                            "reading": {"diff": -0.1, "ci95": [-0.3, 0.1], "n": 10}}}}
        out = Path(ecfg.out)
        items = out / "items.jsonl"
        before = items.read_text().splitlines() if items.is_file() else []
        self.found_rows[out.parent.name] = Counter(json.loads(x)["arm"] for x in before)
        out.mkdir(parents=True, exist_ok=True)
        items.write_text("".join(json.dumps({"arm": a, "id": r["id"], "key": "k"}) + "\n"
                                 for a, rs in rows.items() for r in rs))
        (out / "report.json").write_text(json.dumps(report))
        return report


def test_cells_are_full_validated_experiments(tmp_path):
    sw = load_sweep(sweep_file(tmp_path))
    assert sw.cell_names() == ["center", "para0", "lr", "qv", "k3"]
    by = {c.name: c.config for c in sw.cells}
    assert by["center"].name == "sw.center" and by["center"].train.options.epochs == 2  # base applies to all
    assert by["center"].sft_data.options.paraphrases == 2 and by["para0"].sft_data.options.paraphrases == 0
    assert by["lr"].train.options.lr == 1e-4 and by["qv"].train.options.target_modules == ["q_proj", "v_proj"]
    assert by["center"].bench == [str(tmp_path / "bench.jsonl")]  # paths relative to the file
    # --set applies to every cell, and a cell's own set wins over it.
    sw = load_sweep(sweep_file(tmp_path), ["eval.limit=3", "train.options.lr=0.01"])
    assert {c.config.eval.limit for c in sw.cells} == {3}
    assert {c.name: c.config.train.options.lr for c in sw.cells}["lr"] == 1e-4
    assert {c.name: c.config.train.options.lr for c in sw.cells}["center"] == 0.01


def test_grid_is_the_full_product(tmp_path):
    sw = load_sweep(sweep_file(tmp_path, grid={"train.options.lr": [1.0e-4, 1.0e-3],
                                               "sft_data.options.paraphrases": [0, 2, 4]}))
    assert len(sw.cells) == 6 and sw.cell_names()[0] == "lr-0.0001_paraphrases-0"
    assert {(c.config.train.options.lr, c.config.sft_data.options.paraphrases) for c in sw.cells} == \
        {(lr, p) for lr in (1e-4, 1e-3) for p in (0, 2, 4)}


@pytest.mark.parametrize("block, msg", [
    ({"cells": [{"name": "bad", "set": {"train.options.bogus": 1}}]},
     r"cell 'bad': train\.options\.bogus: unknown setting"),
    ({"cells": [{"name": "neg", "set": {"sft_data.options.paraphrases": -1}}]}, r"cell 'neg': sft_data\.options\.paraphrases"),
    ({"cells": [{"name": "a"}, {"name": "a"}]}, "appear more than once"),
    ({"cells": [{"name": "a"}], "grid": {"eval.k": [1]}}, "exactly one of cells"),
    ({"cells": [{"name": "a", "sett": {}}]}, r"sweep\.cells\[1\]"),
    ({"grid": {"eval.k": 3}}, "non-empty list"),
    ({"cells": [{"name": "a b"}]}, "cell 'a b': name must be"),
    ({"cells": [{"name": "a"}], "extra": 1}, "unknown: extra"),
])
def test_bad_sweeps_name_the_cell_and_key(tmp_path, block, msg):
    with pytest.raises(UsageError, match=msg):
        load_sweep(sweep_file(tmp_path, **block))


def test_cells_share_cached_steps(tmp_path, monkeypatch):
    fake = FakeSteps().install(monkeypatch)
    result = run_sweep(load_sweep(sweep_file(tmp_path)), tmp_path / "runs")
    # 5 cells: one corpus → one ingest; two sft_data settings; k3 trains like center → four adapters.
    assert fake.calls == Counter(ingest=1, sft_data=2, train=4, eval=5)
    cells = result["cells"]
    assert cells["para0"]["steps"] == {"ingest": "cached", "sft_data": "done", "train": "done", "eval": "done",
                                       "report": "done"}
    assert cells["k3"]["steps"]["train"] == "cached" and cells["lr"]["steps"]["sft_data"] == "cached"
    root = tmp_path / "runs" / "sw"
    k3, center = root / "cells" / "k3", root / "cells" / "center"
    assert (k3 / "adapters").is_symlink() and (k3 / "adapters").resolve() == (center / "adapters").resolve()
    # The shared step's info names the cell's own run directory, and keeps the real train time.
    state = json.loads((k3 / "state.json").read_text())["steps"]["train"]
    assert state["adapters"]["en"] == str(k3 / "adapters" / "en") and state["cached"] is True
    assert state["seconds"] == json.loads((center / "state.json").read_text())["steps"]["train"]["seconds"]
    assert sorted(p.name.split("-")[0] for p in (root / "cache").iterdir()) == ["ingest", "sft_data", "sft_data",
                                                                                "train", "train", "train", "train"]
    assert cells["center"]["retention"]["sft"]["accuracy"] == 0.7 and cells["center"]["forgetting"]["sft"]["diff"] == -0.2


def test_an_interrupted_sweep_continues_where_it_stopped(tmp_path, monkeypatch):
    fake = FakeSteps().install(monkeypatch)
    fake.interrupt_train_at = 3  # the third adapter (cell lr) is killed half-way
    sw = load_sweep(sweep_file(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sw, tmp_path / "runs")
    assert fake.calls == Counter(ingest=1, sft_data=2, train=3, eval=2)
    result = run_sweep(sw, tmp_path / "runs")
    # Nothing finished is redone; the killed training starts again in its own cache directory.
    assert fake.calls == Counter(ingest=1, sft_data=2, train=5, eval=5)
    assert fake.resumed_from_partial == ["sw.lr"]
    assert result["cells"]["center"]["steps"]["train"] == "up to date"
    assert result["cells"]["lr"]["steps"] == {"ingest": "up to date", "sft_data": "up to date", "train": "done",
                                              "eval": "done", "report": "done"}
    run_sweep(sw, tmp_path / "runs")
    assert fake.calls == Counter(ingest=1, sft_data=2, train=5, eval=5)  # a third run does nothing


def test_a_changed_cell_relinks_to_the_new_hash_and_keeps_the_old_cache(tmp_path, monkeypatch):
    fake = FakeSteps().install(monkeypatch)
    p = sweep_file(tmp_path)
    run_sweep(load_sweep(p), tmp_path / "runs", cells=["center"])
    run_sweep(load_sweep(p, ["train.options.epochs=3"]), tmp_path / "runs", cells=["center"])
    assert fake.calls == Counter(ingest=1, sft_data=1, train=2, eval=2)
    run_sweep(load_sweep(p), tmp_path / "runs", cells=["center"])  # back: relinked, not retrained
    assert fake.calls == Counter(ingest=1, sft_data=1, train=2, eval=3)


def test_step_cache_marks_paths_relative_to_the_run_dir(tmp_path):
    cache = StepCache(tmp_path / "缓存")
    a, b = tmp_path / "cells" / "甲", tmp_path / "cells" / "b"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    assert cache.attach("train", "h" * 20, a) is None and (a / "adapters").is_symlink()
    cache.finish("train", "h" * 20, a, {"status": "done", "hash": "h", "seconds": 3.0,
                                        "adapters": {"en": str(a / "adapters" / "en")}})
    assert cache.attach("train", "h" * 20, b) == {"seconds": 3.0, "adapters": {"en": str(b / "adapters" / "en")}}
    assert cache.linked("train", "h" * 20, b) and not cache.linked("train", "g" * 20, b)


def test_run_cli_cells_subset_and_json(tmp_path, monkeypatch):
    fake = FakeSteps().install(monkeypatch)
    p = sweep_file(tmp_path)
    r = CliRunner().invoke(main, ["run", str(p), "--runs-dir", str(tmp_path / "runs"), "--cells", "center,qv",
                                  "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert list(out["cells"]) == ["center", "qv"] and fake.calls["train"] == 2
    assert out["cells"]["qv"]["arms"]["sft"]["accuracy"] == pytest.approx(4 / 12, abs=1e-3)
    assert "[cell 2/2 qv] [train] running" in r.stderr
    r = CliRunner().invoke(main, ["run", str(p), "--cells", "nope"])
    assert r.exit_code == 2 and "unknown cell(s) nope" in r.output
    r = CliRunner().invoke(main, ["run", str(p), "--check"])
    assert r.exit_code == 0 and "lr: train.options.lr=0.0001" in r.output and "5 cell(s)" in r.output
    r = CliRunner().invoke(main, ["run", str(p), "--new"])
    assert r.exit_code == 2 and "--new does not apply to a sweep" in r.output
    single = tmp_path / "single.yaml"
    single.write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(p.read_text()).items() if k != "sweep"}))
    r = CliRunner().invoke(main, ["run", str(single), "--cells", "center"])
    assert r.exit_code == 2 and "--cells is for a sweep" in r.output


def test_report_puts_cells_side_by_side_with_retention(tmp_path, monkeypatch):
    FakeSteps().install(monkeypatch)
    p = sweep_file(tmp_path)
    run_sweep(load_sweep(p), tmp_path / "runs", cells=["center", "para0", "lr"])
    root = tmp_path / "runs" / "sw"
    rep = sweep_report(root)
    assert rep["varied"] == ["sft_data.options.paraphrases", "train.options.lr", "train.options.target_modules",
                             "eval.k"]
    by = {r["cell"]: r for r in rep["cells"]}
    assert by["center"]["settings"]["sft_data.options.paraphrases"] == 2  # center's value, from its config
    assert by["para0"]["settings"]["sft_data.options.paraphrases"] == 0
    # a cell not run yet shows the settings the design resolved for it
    assert by["qv"]["status"] == "not run" and by["qv"]["settings"]["train.options.target_modules"] == ["q_proj", "v_proj"]
    assert by["qv"]["settings"]["train.options.lr"] == 2e-4
    assert by["center"]["train"]["examples"] == 30 and by["para0"]["train"]["examples"] == 10
    assert by["center"]["retention"]["sft"] == {"accuracy": 0.7, "ci95": [0.5, 0.9], "n": 20}
    r = CliRunner().invoke(main, ["report", str(p), "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    assert "forgetting sft − closed_book (pts)" in r.stdout and "-20.0 [-40.0, -5.0]" in r.stdout
    assert "| center | 2 | 0.0002 | all-linear | 5 | 25.0 [0–50] | 33.3 [17–58] | 90.0 [75–100] | 70.0 [50–90] |" in r.stdout
    assert "| cell | arm | general | reading |" in r.stdout and "| center | sft | -30.0 [-50.0, -10.0] | -10.0 [-30.0, +10.0] |" in r.stdout
    assert (root / "sweep.png").stat().st_size > 1000 and "![sweep](sweep.png)" in (root / "sweep.md").read_text()
    assert json.loads((root / "sweep.json").read_text())["cells"][0]["cell"] == "center"
    r = CliRunner().invoke(main, ["report", str(root), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["name"] == "sw"


def test_report_without_retention_keys_degrades(tmp_path, monkeypatch):
    FakeSteps(retention=False).install(monkeypatch)
    run_sweep(load_sweep(sweep_file(tmp_path)), tmp_path / "runs", cells=["center"])
    root = tmp_path / "runs" / "sw"
    files = write_sweep_report(root, sweep_report(root))
    assert not (root / "sweep.png").exists() and str(root / "sweep.md") in files
    md = (root / "sweep.md").read_text()
    assert "No cell has retention figures yet" in md and "retention" not in md.split("\n")[4]
    r = CliRunner().invoke(main, ["report", str(tmp_path / "sw.yaml"), "--runs-dir", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "has not been run" in r.output


def test_base_answers_are_answered_once_per_sweep(tmp_path, monkeypatch):
    fake = FakeSteps().install(monkeypatch)
    run_sweep(load_sweep(sweep_file(tmp_path)), tmp_path / "runs", cells=["center", "para0", "k3"])
    # para0 starts with center's 12 closed_book rows (never its sft rows); k3 retrieves with another
    # k, so its eval settings differ and it gets none.
    assert fake.found_rows == {"center": Counter(), "para0": Counter(closed_book=12), "k3": Counter()}


def test_real_ingest_and_sft_data_write_through_the_links(tmp_path, monkeypatch, fake_embedder):
    """The library's own ingest and build_sft_data (template method, fake embedder) into linked folders."""
    fake = FakeSteps()
    monkeypatch.setattr(steps, "step_train", fake.train)
    monkeypatch.setattr(steps, "run_eval", fake.eval)
    p = sweep_file(tmp_path)
    (tmp_path / "corpus" / "b.md").write_text(
        "# Falcon X3 specifications\n\nThe Falcon X3 has a flight time of 41 minutes. The battery weighs 320 grams. "
        "Charging takes 90 minutes. The maximum range is 8 kilometres.\n\n## Warranty\n\nThe Falcon X3 warranty "
        "lasts 18 months. Batteries are covered for 6 months.\n")
    result = run_sweep(load_sweep(p), tmp_path / "runs", cells=["center", "para0"])
    root = tmp_path / "runs" / "sw"
    assert result["cells"]["para0"]["steps"]["ingest"] == "cached"
    assert (root / "cells" / "para0" / "index" / "CURRENT").is_file()  # a real index, in cache/ingest-*/
    [ingest_dir] = root.glob("cache/ingest-*")
    assert (ingest_dir / "index" / "CURRENT").is_file() and (ingest_dir / DONE).is_file()
    rows = {c: len((root / "cells" / c / "sft" / "qa.jsonl").read_text().splitlines()) for c in ("center", "para0")}
    assert 0 < rows["para0"] < rows["center"]  # paraphrases 0 against 2, each in its own cache folder
