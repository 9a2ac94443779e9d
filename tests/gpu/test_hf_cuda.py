"""The hf backend on CUDA: half precision, device placement, a cited answer. Skipped without CUDA."""

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.models,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_hf_on_cuda_uses_half_precision_and_answers():
    from ragkit.generate import load_generator
    from ragkit.generate.base import Decoding
    from ragkit.pipeline import Pipeline
    from ragkit.types import Hit

    class OneHit:
        def search(self, query, k=5, mode="hybrid"):
            text = "The main unit of the Kestrel M3 has a warranty of 2 years."
            return [Hit(1, "w#0", "warranty.md", 0.9, text, None, 0, len(text))]

    gen = load_generator("smollm2-135m", "hf")
    assert gen.device == "cuda"
    param = next(gen.hf.parameters())
    assert param.is_cuda and param.dtype in (torch.bfloat16, torch.float16)
    ans = Pipeline(OneHit(), gen, decoding=Decoding(max_tokens=24)).answer(
        "How long is the warranty of the Kestrel M3 main unit?")
    assert "2 years" in ans.answer and [c.source for c in ans.citations] == ["warranty.md"]
    assert ans.timings["tokens_per_s"] > 0
