"""pipelines/sft-sweep.yaml: it expands into valid cells, each the center with exactly one factor
changed, and its examples and mix stay the ones its wall-time comment counts on."""

from __future__ import annotations

from pathlib import Path

from ragkit.experiment.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "pipelines" / "sft-sweep.yaml"
# A factor of the design, and the settings that make it (the mix is a file and a ratio).
FACTORS = {
    "mix": {"sft_data.mix", "sft_data.mix_ratio"},
    "paraphrases": {"sft_data.options.paraphrases"},
    "targets": {"train.options.target_modules"},
    "lr": {"train.options.lr"},
}


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_sweep_file_expands_to_one_factor_cells(tmp_path):
    sweep = load_sweep(SWEEP)
    cells = {c.name: flat(c.config.to_dict()) for c in sweep.cells}
    assert list(cells) == ["center", "qv", "mix50", "para0", "lr1e-4", "para4", "mix25"]
    center = cells.pop("center")
    varied = {}
    for name, cfg in cells.items():
        diff = {k for k in set(cfg) | set(center) if k != "name" and cfg.get(k) != center.get(k)}
        hit = [f for f, keys in FACTORS.items() if diff and diff <= keys]
        assert len(hit) == 1, f"{name} differs from center in {sorted(diff)}"
        varied.setdefault(hit[0], []).append(name)
    assert {f: sorted(v) for f, v in varied.items()} == {
        "mix": ["mix25", "mix50"], "paraphrases": ["para0", "para4"], "targets": ["qv"], "lr": ["lr1e-4"]}


def test_sweep_center_and_levels(tmp_path):
    by = {c.name: c.config for c in load_sweep(SWEEP).cells}
    c = by["center"]
    assert c.base_model("en") == "qwen2.5-coder-0.5b" and c.train.languages == ["en"]
    assert c.eval.models == {"en": "qwen2.5-coder-0.5b"} and c.eval.arms == ["closed_book", "sft"]
    assert c.sft_data.mix is None and c.sft_data.options.paraphrases == 2 and c.sft_data.options.tasks == ["direct"]
    assert c.train.options.target_modules == "all-linear" and c.train.options.lr == 1e-3 and c.train.options.epochs == 2
    assert [by[n].sft_data.mix_ratio for n in ("mix25", "mix50")] == [0.25, 0.5]
    assert Path(by["mix25"].sft_data.mix).name == "general-en.jsonl"
    assert [by[n].sft_data.options.paraphrases for n in ("para0", "para4")] == [0, 4]
    assert by["qv"].train.options.target_modules == ["q_proj", "v_proj"] and by["lr1e-4"].train.options.lr == 1e-4
    # English only: the bench and the mix file hold no Chinese questions.
    for path in (c.bench[0], by["mix25"].sft_data.mix):
        assert not any("\u4e00" <= ch <= "\u9fff" for ch in Path(path).read_text(encoding="utf-8"))


def test_sweep_cells_share_the_retention_bench():
    by = {c.name: c.config for c in load_sweep(SWEEP).cells}
    assert {Path(str(c.eval.general_bench)).name for c in by.values()} == {"retention-en.jsonl"}
