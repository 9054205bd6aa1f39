"""The one wording of a validation failure, and strategy knobs parsed through it."""

from __future__ import annotations

import pytest

from dse._validation import strategy_config
from dse.errors import StrategyError
from dse.rlm import knobs_from_params, search_knobs
from dse.runtime import ByLengthConfig
from dse.signature import Params


def test_bad_rlm_knobs_name_the_params_field_and_the_knob() -> None:
    with pytest.raises(StrategyError) as caught:
        knobs_from_params(Params(rlm_lite={"max_iterations": 0}))
    assert caught.value.message.startswith("params.rlm_lite is not valid RlmKnobs: max_iterations")
    assert caught.value.details["strategy_id"] == "rlm_lite.v1"


def test_an_unknown_search_knob_is_named() -> None:
    with pytest.raises(StrategyError, match=r"params.strategy.config .* top_kk: Extra inputs"):
        search_knobs({"top_kk": 3})


def test_strategy_config_returns_the_validated_model() -> None:
    config = strategy_config(
        ByLengthConfig,
        {"threshold_chars": 100, "short": {"id": "direct.v1"}, "long": {"id": "search.v1"}},
        where="params.strategy.config",
        strategy_id="by_length.v1",
    )
    assert config.threshold_chars == 100 and config.long.id == "search.v1"
