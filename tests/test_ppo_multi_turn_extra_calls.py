"""--multi_turn rewards for an output with several calls: one score, its worst call's (as tl.classify
scores extra calls), so repeating a call in one output earns nothing more."""
import pytest

import ppo_tiny
import sft_tiny
from tl import multi_turn
from tl.generate import Generation
from tl.model import Transformer
from tl.sandbox import Result

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    setup = ppo_tiny.write_setup(tmp_path_factory.mktemp("ppo_extra"))
    setup["actor"] = Transformer.from_pretrained(setup["model"])
    return setup


class FixedWeather:
    def run(self, call):
        return Result(True, '{"temp_c": 18}')


@pytest.mark.parametrize("output, score", [
    (' [get_weather_current(city="Paris"), get_weather_current(city="Paris")]', 1.0),   # not +2
    (' [get_weather_current(city="Paris"), made_up(x=1)]', -2.0),                       # the worst call
])
def test_one_score_per_output(tiny, monkeypatch, output, score):
    tok = tiny["tokenizer"]
    ids = tok.encode_continuation(output) + [tok.eos_id]

    def fake_generate(model, prompts, **kw):
        return Generation([ids] * len(prompts), [[0.0] * len(ids)] * len(prompts), ["eos"] * len(prompts),
                          [tok.decode(ids, continuation=True)] * len(prompts))

    monkeypatch.setattr(multi_turn, "generate", fake_generate)
    batch = multi_turn.episode_rollout(tiny["actor"], tok, [{"tools": sft_tiny.TOOLS, "query": "Weather in Paris?"}],
                                       FixedWeather(), max_turns=1, max_new_tokens=48, max_len=4096)
    assert batch.score_positions[0].tolist() == [len(ids) - 1] and batch.scores[0].tolist() == [score]
