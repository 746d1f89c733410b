"""The stage machine's transitions, decided from scores alone."""

from __future__ import annotations

import pytest

from rnnsearch.search.config import config_for
from rnnsearch.search.policy import Scores, StagePolicy, Work
from rnnsearch.states import Stage

GRU = {"arithmetic": 0.5, "xml": 0.8}


def policy(**kw) -> StagePolicy:
    return StagePolicy(config_for("t", "smoke", tasks=("arithmetic", "xml"), **kw))


def scores(best, gru_complete=True) -> Scores:
    return Scores(best=best, gru_best=GRU, gru_complete=gru_complete)


def test_memorize_passes_at_the_threshold_and_filters_below():
    p = policy(memorize_threshold=0.5)
    assert p.next_stage(Stage.MEMORIZE, scores({"memorize": 0.5})) == Stage.TASK1
    assert p.next_stage(Stage.MEMORIZE, scores({"memorize": 0.49})) == Stage.FILTERED
    assert p.next_stage(Stage.MEMORIZE, scores({})) == Stage.FILTERED  # nothing trained


def test_task1_waits_for_the_gru_then_stops_or_continues():
    p = policy(stop_ratio=0.9)
    assert p.next_stage(Stage.TASK1, scores({"arithmetic": 0.9}, gru_complete=False)) is None
    assert p.next_stage(Stage.TASK1, scores({"arithmetic": 0.45})) == Stage.OTHER  # 0.9 of the GRU's 0.5
    assert p.next_stage(Stage.TASK1, scores({"arithmetic": 0.449})) == Stage.STOPPED
    one_task = StagePolicy(config_for("t", "smoke", tasks=("arithmetic",)))
    assert one_task.next_stage(Stage.TASK1, scores({"arithmetic": 0.6})) == Stage.COMPLETE


def test_other_tasks_complete_and_seeds_complete_or_go_to_reference():
    p = policy()
    assert p.next_stage(Stage.OTHER, scores({})) == Stage.COMPLETE
    assert p.next_stage(Stage.SEED, scores({})) == Stage.COMPLETE
    cal = StagePolicy(config_for("c", "smoke", kind="calibration", reference_budget=5.0))
    assert cal.next_stage(Stage.SEED, scores({})) == Stage.REFERENCE
    assert cal.next_stage(Stage.REFERENCE, scores({})) == Stage.COMPLETE


@pytest.mark.parametrize("verdict", [Stage.COMPLETE, Stage.FILTERED, Stage.STOPPED, Stage.DUPLICATE])
def test_a_verdict_goes_nowhere(verdict):
    assert policy().next_stage(verdict, scores({"memorize": 1.0, "arithmetic": 1.0})) is None


def test_work_of_each_stage():
    p = policy(settings_per_task=3, baseline_settings=5, memorize_settings=2)
    assert p.work(Stage.MEMORIZE) == [Work("memorize", 2, 0, Stage.MEMORIZE)]
    assert p.work(Stage.TASK1) == [Work("arithmetic", 3, 0, Stage.TASK1)]
    assert p.work(Stage.OTHER) == [Work("xml", 3, 0, Stage.OTHER)]
    assert p.work(Stage.SEED, is_gru=True) == [Work("arithmetic", 5, 0, Stage.SEED), Work("xml", 5, 0, Stage.SEED)]
    assert p.work(Stage.SEED) == [Work("arithmetic", 3, 0, Stage.SEED), Work("xml", 3, 0, Stage.SEED)]
    assert p.work(Stage.COMPLETE) == []
    # a re-evaluation is the next round after the settings a member had
    assert p.reevaluation({"arithmetic": 3, "xml": 7}) == [
        Work("arithmetic", 3, 2, Stage.REEVAL),
        Work("xml", 3, 3, Stage.REEVAL),
    ]


def test_settings_stop_early_only_where_the_search_filters_or_cannot_lose():
    p = policy()
    assert [s for s in Stage if p.stops_early(s)] == [Stage.TASK1, Stage.REEVAL]
    assert not any(policy(early_stop=False).stops_early(s) for s in Stage)
