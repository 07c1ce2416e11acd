"""experiments/table5.py --quick: the wiring of the ablation (every row trained, evaluated and
tabulated; resumable), in seconds on tiny models: the demo's random model, and a tiny random
tied-embedding model with a byte-level BPE tokenizer standing in for SmolLM2."""

import json
from pathlib import Path

import pytest
import table5  # noqa: E402
from conftest import SHARED_DATA

pytestmark = pytest.mark.usefixtures("one_thread")
ROWS = ["none", "MAE", "PKT", "MAE+PKT", "w/ IRM", "w/ All", "w/ IRM multi-turn"]


def check_quick_table(runs, out: Path, columns):
    assert list(runs) == ROWS
    for row, per_seed in runs.items():
        assert set(columns) <= set(per_seed[0]), row
        assert 0 <= per_seed[0]["planted"] <= 100 and -2 <= per_seed[0]["reward"] <= 1
    assert runs["w/ All"][0]["CF_before"] == runs["MAE+PKT"][0]["CF"]
    assert runs["w/ IRM"][0]["reward_before"] == runs["none"][0]["reward"]
    text = (out / "table5.md").read_text()
    assert "| Δ MAE − none |" in text and "| w/ IRM |" in text
    saved = json.loads((out / "table5.json").read_text())
    assert {(r["row"], r["seed"]) for r in saved["runs"]} == {(row, 0) for row in ROWS}
    pkt = next(r for r in saved["runs"] if r["row"] == "PKT")
    assert {k: v for k, v in pkt.items() if k not in ("row", "seed")} == runs["PKT"][0]


def test_quick_run_fills_every_row_and_column(tmp_path):
    runs = table5.main(["--quick", "--out", str(tmp_path)])
    check_quick_table(runs, tmp_path, table5.COLUMNS)
    assert json.loads((tmp_path / "table5.json").read_text())["model"] == "demo"
    again = table5.main(["--quick", "--out", str(tmp_path)])  # resumed: nothing retrained, same numbers
    assert all(again[row][0] == runs[row][0] for row in runs)


def test_quick_pretrained_mode_on_a_tiny_tied_bpe_model(tmp_path):
    """--model smol's wiring: the smol presets on a tiny tied-embedding model with a tokenizer.json,
    and the real benchmark files when ../shared/data is there."""
    benchmarks = ["--benchmarks", str(SHARED_DATA)] if SHARED_DATA.is_dir() else []
    runs = table5.main(["--quick", "--model", "smol", "--out", str(tmp_path), *benchmarks])
    columns = table5.COLUMNS + (table5.BENCHMARK_COLUMNS if benchmarks else ())
    check_quick_table(runs, tmp_path, columns)
    config = json.loads((tmp_path / "sft_none_0" / "model" / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    assert (tmp_path / "ppo_All_0" / "model" / "tokenizer.json").is_file()
    args = json.loads((tmp_path / "sft_none_0" / "args.json").read_text())
    assert args["preset"] == "smol" and args["mae"] is False and args["pkt"] is False


def test_table_statistics_are_paired_over_seeds():
    runs = {
        "none": {0: dict.fromkeys(table5.COLUMNS, 10.0), 1: dict.fromkeys(table5.COLUMNS, 20.0)},
        "MAE": {0: dict.fromkeys(table5.COLUMNS, 12.0), 1: dict.fromkeys(table5.COLUMNS, 24.0)},
    }
    text = table5.table(runs, [0, 1])
    assert "| none | 15.00 ± 7.07 |" in text
    assert "| Δ MAE − none | +3.00 ± 1.00 |" in text  # differences 2 and 4: mean 3, sd 1.41, SE 1.00
