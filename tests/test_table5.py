"""experiments/table5.py --quick: the wiring of the ablation (every row trained, evaluated and
tabulated; resumable), in a few seconds on tiny models."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import table5  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_run_fills_every_row_and_column(tmp_path):
    runs = table5.main(["--quick", "--out", str(tmp_path)])
    assert list(runs) == ["none", "MAE", "PKT", "MAE+PKT", "w/ IRM", "w/ All", "w/ IRM multi-turn"]
    for row, per_seed in runs.items():
        assert set(table5.COLUMNS) <= set(per_seed[0]), row
        assert 0 <= per_seed[0]["planted"] <= 100 and -2 <= per_seed[0]["reward"] <= 1
    assert runs["w/ All"][0]["CF_before"] == runs["MAE+PKT"][0]["CF"]
    text = (tmp_path / "table5.md").read_text()
    assert "| Δ MAE − none |" in text and "| w/ IRM |" in text
    saved = json.loads((tmp_path / "table5.json").read_text())
    assert saved["runs"]["PKT"]["0"] == runs["PKT"][0]
    again = table5.main(["--quick", "--out", str(tmp_path)])  # resumed: nothing retrained, same numbers
    assert all(again[row][0] == runs[row][0] for row in runs)


def test_table_statistics_are_paired_over_seeds():
    runs = {
        "none": {0: dict.fromkeys(table5.COLUMNS, 10.0), 1: dict.fromkeys(table5.COLUMNS, 20.0)},
        "MAE": {0: dict.fromkeys(table5.COLUMNS, 12.0), 1: dict.fromkeys(table5.COLUMNS, 24.0)},
    }
    text = table5.table(runs, [0, 1])
    assert "| none | 15.00 ± 7.07 |" in text
    assert "| Δ MAE − none | +3.00 ± 1.00 |" in text  # differences 2 and 4: mean 3, sd 1.41, SE 1.00
