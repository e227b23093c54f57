"""benchmarks/gpu_check.py's parts that need no GPU: a tiny CPU run, the section it writes,
and the one-line exit on a machine without CUDA."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_tiny_cpu_run_writes_its_section_and_keeps_the_others(gpu_check, tmp_path: Path,
                                                              capsys) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nintro\n\n## Other\n\nkept\n")
    args = ["--device", "cpu", "--images", "8", "--size", "32", "--width", "0.0625",
            "--workers", "0", "--batch-size", "4", "--out", str(out)]
    assert gpu_check.main(args) == 0
    text = out.read_text()
    assert "## Other\n\nkept" in text and text.count(f"## {gpu_check.SECTION}") == 1
    assert "8 generated 32×32 frames (a reduced set)" in text
    assert "bit-identical (weights and loss): yes" in text
    assert "AMP dtype: none (fp32)" in text and "| 2 |" in text
    assert gpu_check.main(args) == 0  # rerun: the section is replaced, not appended
    assert out.read_text().count(f"## {gpu_check.SECTION}") == 1


def test_without_cuda_one_line_and_status_1(gpu_check, tmp_path: Path, capsys,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "b.md"
    assert gpu_check.main(["--out", str(out)]) == 1
    printed = capsys.readouterr().out.strip()
    assert "\n" not in printed and "no CUDA device" in printed
    assert not out.exists()
    assert gpu_check.main(["--out", str(out), "--note-absence"]) == 1
    assert "Not measured: no CUDA device was available" in out.read_text()


def test_digest_sees_any_weight_change(gpu_check) -> None:
    net = torch.nn.Linear(3, 2)
    before = gpu_check.weights_digest(net)
    with torch.no_grad():
        net.weight[0, 0] += 1e-7
    assert gpu_check.weights_digest(net) != before
