"""One real build-sft-data run with the bundled models (SmolLM2 for English, Gemma 3 for Chinese)
writing questions on a two-chunk corpus: the model's text must come back as one clean question
per span, or be counted as dropped; nothing the model invents reaches the output unfiltered."""

from __future__ import annotations

import json

import pytest

from ragkit.index import IngestConfig, ingest
from ragkit.sftdata import filters as F
from ragkit.sftdata.qa import SFTDataConfig, build_sft_data

pytestmark = pytest.mark.models


def test_bundled_models_write_questions_for_a_two_chunk_corpus(tmp_path, fake_embedder):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "falcon.md").write_text("# Falcon X2 Drone Manual\n\nThe Falcon X2 drone flies for 38 minutes per charge.\n",
                                    encoding="utf-8")
    (root / "猎鹰.md").write_text("# 猎鹰 X2 保修政策\n\n猎鹰 X2 无人机整机保修 24 个月。\n", encoding="utf-8")
    ingest([root], tmp_path / "idx", IngestConfig(embed_model="fake-embedder"))
    out = tmp_path / "sft.jsonl"
    s = build_sft_data(tmp_path / "idx", out, SFTDataConfig(method="model", per_chunk=1, paraphrases=1,
                                                            model_paraphrases=1))
    assert s.chunks_seen == 2 and s.spans == 2
    assert s.model_calls >= 2  # one question per span, plus rephrasings of kept questions
    # Every model question was either kept as a clean question or counted under a filter.
    written = s.kept_by_writer.get("model", 0)
    assert written + sum(s.dropped.values()) == s.generated == 2
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    prov = [json.loads(x) for x in out.with_name("sft.provenance.jsonl").read_text(encoding="utf-8").splitlines()]
    for r, p in zip(rows, prov):
        q = r["instruction"]
        assert "\n" not in q
        if p["task"] == "direct":
            assert q.endswith(("?", "？")) and r["output"] in ("38 minutes", "24 个月")
            assert not F.contains_answer(q, r["output"])
