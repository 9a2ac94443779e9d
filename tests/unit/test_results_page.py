"""docs/results.md is generated from evals/results/*.json: a number on the page cannot drift from its run."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_page_module():
    spec = importlib.util.spec_from_file_location("results_page", ROOT / "evals" / "results_page.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_results_page_is_what_the_script_writes():
    page = load_page_module()
    assert (ROOT / "docs" / "results.md").read_text(encoding="utf-8") == page.render(), \
        "docs/results.md is out of date: run python evals/results_page.py"


def test_a_changed_result_file_makes_the_page_out_of_date(tmp_path, monkeypatch):
    page = load_page_module()
    results = tmp_path / "evals" / "results"
    (results / "run").mkdir(parents=True)
    report = results / "run" / "load.json"
    report.write_text(json.dumps({"ratios": {"serve_over_pipeline": 1.07}}), encoding="utf-8")
    monkeypatch.setattr(page, "ROOT", tmp_path)
    monkeypatch.setattr(page, "RESULTS", results)
    before = page.render()
    assert "| ratios.serve_over_pipeline | 1.07 |" in before
    report.write_text(json.dumps({"ratios": {"serve_over_pipeline": 1.31}}), encoding="utf-8")
    assert page.render() != before and "1.31" in page.render()
