"""``evaluate compare``: two tiny models (an open_clip CLIP folder and a SigLIP folder) on tiny data folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from pipelines.cli.main import cli
from tests.pipelines.cli.test_evaluate import COLOURS, _image, _voc
from tests.remoteclip.zoo_checkpoints import write_siglip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Class folders, a captions CSV and a VOC counting folder."""
    root = tmp_path_factory.mktemp("compare-data")
    for c, (name, colour) in enumerate(COLOURS.items()):
        for i in range(4):
            _image(root / "scenes" / name / f"{i}.png", colour, seed=10 * c + i)
    lines = ["filepath,caption"]
    for i, colour in enumerate(COLOURS.values()):
        _image(root / "caps" / f"{i}.png", colour, seed=50 + i)
        lines += [f"{i}.png,a photo number {i}", f"{i}.png,scene {i} from above"]
    (root / "caps" / "captions.csv").write_text("\n".join(lines) + "\n")
    for i, n in enumerate((1, 2, 4)):
        _image(root / "boats" / "images" / f"{i}.png", (30, 60, 120), seed=90 + i, size=64)
        _voc(root / "boats" / "annotations" / f"{i}.xml", f"{i}.png", [(2 + 6 * j, 2, 7 + 6 * j, 7) for j in range(n)])
    return {"zero-shot": root / "scenes", "retrieval": root / "caps" / "captions.csv", "counting": root / "boats"}


def test_compare_two_models_writes_one_table_and_plot(
    data: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    siglip = tmp_path / "tiny-siglip"
    write_siglip(siglip)
    out = tmp_path / "cmp"
    args = ["evaluate", "compare", "--models", f"{tiny_checkpoint},Git-RSCLIP={siglip}", "--backend", "torch",
            *(arg for task, path in data.items() for arg in ("--data", f"{task}={path}")), "--out-dir", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output

    report = json.loads((out / "compare.json").read_text())
    rows = report["rows"]
    assert [(r["model"], r["task"]) for r in rows] == [
        (model, task) for model in ("tiny-clip", "Git-RSCLIP (tiny-siglip)") for task in data
    ]
    assert rows[0]["model_id"].startswith("tiny-clip@") and rows[3]["model_id"].startswith("Git-RSCLIP@")
    assert [r["n"] for r in rows] == [12, 3, 3] * 2
    # each figure is the single-task command's for that model
    for model, row in ((str(tiny_checkpoint), rows[0]), ("Git-RSCLIP", rows[3])):
        extra = ["--weights", str(siglip)] if model == "Git-RSCLIP" else []
        single = CliRunner().invoke(
            cli, ["evaluate", "zero-shot", "--data", str(data["zero-shot"]), "--model", model, *extra,
                  "--backend", "torch", "--format", "json"], catch_exceptions=False,
        )
        assert row["top-1 %"] == pytest.approx(100 * json.loads(single.stdout)["metrics"]["top1"], abs=0.01)
    assert all(0 <= r["mR"] <= 100 for r in rows if r["task"] == "retrieval")
    assert all(r["count MAE"] >= 0 and r["locator MAE"] is None for r in rows if r["task"] == "counting")
    assert len(report["results"]) == 6 and all(r["predictions"] for r in report["results"])

    table = (out / "compare.md").read_text()
    assert "| model | model_id | task | dataset | n | top-1 %" in table and table.count("\n| ") == 7
    with open(out / "compare.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 6
    with Image.open(out / "compare.png") as plot:
        assert plot.width > 600 and plot.height > 200
    assert "table:" in result.output and "| tiny-clip |" in result.output

    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "pass --overwrite" in again.output


def test_compare_rejects_an_unknown_task(tiny_checkpoint: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["evaluate", "compare", "--models", str(tiny_checkpoint), "--data", f"knn={tmp_path}",
              "--out-dir", str(tmp_path / "out")],
    )
    assert result.exit_code == 2 and "zero-shot, retrieval, counting" in result.output
