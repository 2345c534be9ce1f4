import base64
import csv
import json
import re

import pytest
from typer.testing import CliRunner

from report_fixture import make_study
from spillover.cli import app
from spillover.io import InputError
from spillover.report import build_report
from spillover.report.data import VARIANT_LABELS, VARIANTS, load_study
from spillover.report.figures import VARIANT_COLOURS
from spillover.report.tables import aggregate
from spillover.study.config import StudyConfig
from spillover.variants import VARIANT_TABLE

SECTIONS = ("table", "radar", "spillover", "methods", "kl", "training", "judges", "concepts", "examples", "manifest")
TABLES = ("paper_table.csv", "paper_table.md", "paper_table.json", "scores_all_judges.csv", "spillover_matrix.csv",
          "methods.csv", "methods.md", "checkpoints.csv", "checkpoints.md", "agreement.csv", "agreement.md")
EVIL = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"


def _read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _images(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', html)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A two-target, single-seed study with every optional file; its report is built once."""
    study = make_study(tmp_path_factory.mktemp("full") / "study", response=EVIL)
    html_path = build_report(study)
    return study, html_path, html_path.read_text()


def test_report_has_every_section_table_and_figure(full):
    study, html_path, html = full
    assert html_path == study / "report" / "report.html"
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in html
    for name in TABLES:
        assert (study / "report" / "tables" / name).stat().st_size > 0
    # 2 radars + spill-over + 2 KL (one per target) + loss + histograms + similarity grid + correlation
    srcs = _images(html)
    assert len(srcs) == html.count("<img") == 9
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'class="missing"' not in html
    assert not re.search(r'(src|href)="(https?:)?//', html) and "url(" not in html
    assert html.count('<table class="paper">') == 2 and html.count('class="target"') >= 2
    assert 'class="ema"' in html and "<details" in html and "<details open" not in html
    assert "llm:qwen2.5-coder-1.5b/refusal-v1" in html and "exact-match" in html  # judge identity
    assert "0.877 [0.850, 0.900]" in html and "gpt4 0.940" in html  # calibration against human labels
    assert "ab" * 32 in html and "900.2" in html and "ema_threshold: 15" in html  # manifest


def test_paper_table_csv_equals_input_numbers(full):
    study, _, _ = full
    inputs = {(r["variant"], r["target"], r["set"], r["judge"]): r for r in _read_csv(study / "results" / "scores.csv")}
    table = _read_csv(study / "report" / "tables" / "paper_table.csv")
    assert len(table) == (1 + 2 * 4) * 9  # aligned + 2 targets x 4 variants, 9 columns
    for row in table:
        src = inputs[(row["variant"], row["target"], row["set"], row["judge"])]
        assert row["judge"] in ("llm:qwen2.5-coder-1.5b/refusal-v1", "exact-match")  # primary judge chosen
        for field in ("n", "k"):
            assert int(row[field]) == int(src[field])
        for field in ("rate", "ci_low", "ci_high", "delta", "p_mcnemar"):
            assert (row[field] == src[field] == "") or float(row[field]) == pytest.approx(float(src[field]))
        assert row["ema"] == src["ema"].lower()
    everything = _read_csv(study / "report" / "tables" / "scores_all_judges.csv")
    assert len(everything) == len(inputs)
    md = (study / "report" / "tables" / "paper_table.md").read_text()
    assert "| CYBERSECURITY |" in md and "| SAFETY |" in md
    assert len(re.findall(r"\*\*[0-9]", md)) == sum(r["ema"] == "true" for r in table) > 0
    js = json.loads((study / "report" / "tables" / "paper_table.json").read_text())
    assert [g["target"] for g in js["tables"]] == ["cybersecurity", "safety"]
    assert js["tables"][0]["rows"][0]["variant"] == "aligned"


def test_html_is_escaped(full):
    _, _, html = full
    assert html.count("&lt;script&gt;") == 7  # the aligned response once per domain, not once per run
    assert EVIL not in html and "<script" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in html


def test_seeds_are_aggregated(tmp_path):
    study = make_study(tmp_path / "s", targets=("safety",), seeds=(0, 1, 2), optional=False)
    rows = _read_csv(study / "results" / "scores.csv")
    cells = {(c.variant, c.target, c.set, c.judge): c for c in aggregate(load_study(study))}
    key = ("unlearn", "safety", "bias", "llm:qwen2.5-coder-1.5b/refusal-v1")
    seeds = [r for r in rows if (r["variant"], r["target"], r["set"], r["judge"]) == key]
    cell = cells[key]
    assert cell.seeds == [0, 1, 2]
    assert cell.rate == pytest.approx(sum(float(r["rate"]) for r in seeds) / 3)
    assert cell.ci_low == min(float(r["ci_low"]) for r in seeds)
    assert cell.n == sum(int(r["n"]) for r in seeds) and cell.seed_sd > 0


def test_ema_threshold_comes_from_config(tmp_path):
    study = make_study(tmp_path / "s", targets=("safety",), optional=False)
    n_default = sum(c.ema for c in aggregate(load_study(study)))
    manifest = json.loads((study / "manifest.json").read_text())
    manifest["config"]["evaluate"]["ema_threshold"] = 40
    (study / "manifest.json").write_text(json.dumps(manifest))
    n_strict = sum(c.ema for c in aggregate(load_study(study)))
    assert 0 < n_strict < n_default


def test_missing_optional_files_one_target(tmp_path):
    study = make_study(tmp_path / "s", targets=("safety",), optional=False, two_judges=False, judges_as_list=False)
    html = build_report(study).read_text()
    assert "Primary judge(s): <b>llm:qwen2.5-coder-1.5b/refusal-v1</b>." in html
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in html
    assert len(_images(html)) == 2  # radar + a one-row spill-over heatmap
    for note in ("results/kl.csv", "results/train_log.csv", "results/checkpoints.csv", "results/agreement.json",
                 "results/calibration.json",
                 "results/examples.jsonl", "concepts/summary.json", "concepts/correlation.json",
                 "concepts/prediction.json"):
        assert f"Nothing in {note} (absent or empty)" in html
    tables = {p.name for p in (study / "report" / "tables").iterdir()}
    assert tables == {"paper_table.csv", "paper_table.md", "paper_table.json", "scores_all_judges.csv",
                      "spillover_matrix.csv", "methods.csv", "methods.md"}  # both from scores.csv


def test_aligned_only(tmp_path):
    study = make_study(tmp_path / "s", targets=(), optional=False, two_judges=False)
    html = build_report(study).read_text()
    assert "Aligned model only" in html and "spill-over matrix omitted" in html
    assert len(_images(html)) == 1  # the aligned radar


def test_bad_input_names_file_row_field(tmp_path):
    study = make_study(tmp_path / "s", targets=("safety",), optional=False, two_judges=False)
    path = study / "results" / "scores.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",toxicity,", ",toxic-ity,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"scores\.csv, row 4, field 'set': unknown set 'toxic-ity'"):
        build_report(study)
    (study / "manifest.json").unlink()
    with pytest.raises(InputError, match="manifest.json: file not found"):
        build_report(study)
    with pytest.raises(InputError, match="study directory not found"):
        build_report(tmp_path / "nope")


def test_cli_prints_report_path(tmp_path):
    study = make_study(tmp_path / "s", targets=(), optional=False, two_judges=False)
    result = CliRunner().invoke(app, ["report", str(study)])
    assert result.exit_code == 0, result.output
    assert str(study / "report" / "report.html") in result.output
    assert (study / "report" / "report.html").exists()


def test_bad_concept_files_are_named(tmp_path):
    study = make_study(tmp_path / "s", targets=("safety",))
    (study / "concepts" / "prediction.json").write_text(json.dumps({"safety": [["cyber", 0.1]]}))
    with pytest.raises(InputError, match=r"prediction\.json, field 'safety', item 0"):
        load_study(study)
    (study / "concepts" / "prediction.json").unlink()
    summary = json.loads((study / "concepts" / "summary.json").read_text())
    summary["vector_similarity"] = summary["vector_similarity"][:-1]
    (study / "concepts" / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match=r"summary\.json, field 'vector_similarity': expected shape"):
        load_study(study)


def test_report_variants_are_the_aligned_model_then_the_study_variants():
    assert VARIANTS == ("aligned", *VARIANT_TABLE)
    assert StudyConfig(name="x", variants=list(VARIANT_TABLE)).variants == list(VARIANT_TABLE)
    with pytest.raises(ValueError, match="unknown variant 'aligned'"):
        StudyConfig(name="x", variants=["aligned"])
    assert set(VARIANT_LABELS) == set(VARIANT_COLOURS) == set(VARIANTS)
