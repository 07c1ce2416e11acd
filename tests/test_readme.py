"""README.md's commands and examples are the ones the code runs: they cannot drift apart."""

import json
from pathlib import Path

import train_sft
from tasks.trajectories import validate_record
from tl.sft import erroneous_calls

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_example_record_is_valid_and_mae_masks_its_mistake():
    [line] = [ln for ln in README.splitlines() if ln.startswith('{"id": "ex1"')]
    record = validate_record(json.loads(line))
    # The first call passes `town`, which get_weather does not take: its feedback is a TypeError,
    # so MAE puts that call (message 1) in T_e; the corrected call (message 3) keeps its gradient.
    assert erroneous_calls(record["messages"], record["feedback"]) == {1: "param_hallucination"}


def test_fetch_command_is_the_one_the_smol_preset_names():
    # train_sft.py --preset smol without out/smollm2 prints FETCH_SMOLLM2; the README shows the same.
    assert train_sft.FETCH_SMOLLM2 in README
