"""``spillover concepts`` on the tiny model with a few suite prompts."""

import json

from typer.testing import CliRunner

from spillover.cli import app
from spillover.cli.concepts import sample_prompts
from spillover.data.records import PromptRecord

runner = CliRunner()


def test_sample_prompts_is_seeded_and_ordered():
    records = [PromptRecord(id=str(i), prompt=f"p{i}", set="bias", source="s") for i in range(10)]
    a = sample_prompts(records, 4, seed=0)
    assert a == sample_prompts(records, 4, seed=0) and len(a) == 4
    assert a == sorted(a, key=lambda p: int(p[1:]))
    assert sample_prompts(records, 20, seed=0) == [r.prompt for r in records]


def test_cli_concepts(tiny_model_dir, data_dir, tmp_path):
    ema = tmp_path / "ema.json"
    ema.write_text(json.dumps({"safety": {"bias": 10.0, "privacy": 2.0, "toxicity": 5.0, "xstest": 1.0}}))
    out = tmp_path / "out"
    args = ["concepts", "--model", str(tiny_model_dir), "--out", str(out), "--n", "4", "--layers", "1,2",
            "--domains", "safety,bias,privacy,toxicity", "--data-dir", str(data_dir), "--ema", str(ema),
            "--dtype", "fp32"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["domains"] == ["safety", "bias", "privacy", "toxicity"] and summary["layers"] == [1, 2]
    assert all(len(v) == 4 for v in summary["histograms"]["safety"]["1"].values())
    corr = json.loads((out / "correlation.json").read_text())
    assert corr["n_pairs"] == 3 and corr["early_layers_predict"] is None
    pred = json.loads((out / "prediction.json").read_text())
    assert {d for d, _ in pred["safety"]} == {"bias", "privacy", "toxicity"}
    assert (out / "figures" / "correlation.png").exists()
    bad = runner.invoke(app, ["concepts", "--model", str(tiny_model_dir), "--out", str(out), "--layers", "1,x"])
    assert bad.exit_code != 0 and "--layers" in str(bad.exception)
