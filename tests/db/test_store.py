import dataclasses

import pytest

from rnnsearch.cells import CellGraph, zoo
from rnnsearch.db import AlreadyRecorded, NewEvaluation, Store, UnknownEvaluation, schema
from rnnsearch.tasks.api import EvalResult


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def _renamed_gru() -> CellGraph:
    data = zoo.get("GRU").to_dict()
    names = {n["id"]: f"node_{i}" for i, n in enumerate(data["nodes"])}
    for n in data["nodes"]:
        n["id"] = names[n["id"]]
        n["inputs"] = [names.get(u, u) for u in n["inputs"]]
    data["outputs"] = {k: names.get(v, v) for k, v in data["outputs"].items()}
    data["nodes"].reverse()
    return CellGraph.from_dict(data)


def test_fresh_database_is_created_at_head(store):
    assert schema.current(store.engine) == schema.head()


def test_architectures_are_found_by_canonical_identity(store):
    gru, created = store.add_architecture(zoo.get("GRU"), "zoo:GRU", name="GRU")
    again, created_again = store.add_architecture(_renamed_gru(), "user")
    assert created and not created_again
    assert again.id == gru.id and again.origin == "zoo:GRU"
    assert store.lookup(_renamed_gru()).id == gru.id
    assert store.lookup(zoo.get("LSTM")) is None
    lstm, _ = store.add_architecture(zoo.get("LSTM"), "zoo:LSTM", name="LSTM")
    assert lstm.id != gru.id
    assert gru.param_count(128) == 6 * 128 * 128 + 4 * 128


def test_readers_get_frozen_values(store):
    arch, _ = store.add_architecture(zoo.get("MUT1"), "zoo:MUT1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.stage = "x"  # type: ignore[misc]


def test_lineage_and_stage(store):
    root, _ = store.add_architecture(zoo.get("GRU"), "zoo:GRU")
    child, _ = store.add_architecture(
        zoo.get("MUT1"), "mutation", parent_id=root.id, mutation_ops=[["replace_activation", "n3", "relu"]]
    )
    grandchild, _ = store.add_architecture(
        zoo.get("MUT2"), "mutation", parent_id=child.id, mutation_ops=[["remove", "n5"]]
    )
    store.set_stage(grandchild.id, "memorize_failed")
    chain = store.lineage(grandchild.id)
    assert [a.id for a in chain] == [grandchild.id, child.id, root.id]
    assert chain[1].mutation_ops == (["replace_activation", "n3", "relu"],)
    assert store.get_architecture(grandchild.id).stage == "memorize_failed"


def _evals(store, search_id, arch_id, n, task="xml"):
    return store.create_evaluations(
        search_id,
        [NewEvaluation(arch_id, task, {"learning_rate": 0.1 * (i + 1)}, i, {"max_steps": 5}) for i in range(n)],
    )


def test_evaluations_are_created_once_and_resume_as_pending(store):
    search = store.create_search("s", {"preset": "smoke"}, 1)
    arch, _ = store.add_architecture(zoo.get("GRU"), "zoo:GRU")
    first = _evals(store, search.id, arch.id, 3)
    second = _evals(store, search.id, arch.id, 3)
    assert [e.id for e in first] == [e.id for e in second]
    assert len(store.evaluations(search.id)) == 3
    store.mark_running([first[0].request_id])
    pending = store.pending(search.id)
    assert [e.status for e in pending] == ["running", "pending", "pending"]


def test_recording_is_idempotent_and_refuses_to_overwrite(store):
    search = store.create_search("s", {}, 1)
    arch, _ = store.add_architecture(zoo.get("GRU"), "zoo:GRU")
    (ev,) = _evals(store, search.id, arch.id, 1)
    result = EvalResult(
        ev.request_id, "ok", val_accuracy=0.5, test_accuracy=0.45, steps=10, extras=(("closing_accuracy", 0.9),)
    )
    assert store.record_result(result) is True
    before = store.evaluations(search.id)
    assert store.record_result(result) is False
    assert store.evaluations(search.id) == before
    with pytest.raises(AlreadyRecorded):
        store.record_result(dataclasses.replace(result, val_accuracy=0.9))
    with pytest.raises(UnknownEvaluation):
        store.record_result(dataclasses.replace(result, request_id="nope"))
    assert before[0].extras == {"closing_accuracy": 0.9}


def test_scores_baseline_and_counts(store):
    search = store.create_search("s", {}, 1)
    gru, _ = store.add_architecture(zoo.get("GRU"), "zoo:GRU")
    lstm, _ = store.add_architecture(zoo.get("LSTM"), "zoo:LSTM")
    results = {
        (gru.id, "xml"): [("ok", 0.4, 0.38), ("ok", 0.5, 0.47), ("diverged", None, None)],
        (gru.id, "arithmetic"): [("ok", 0.7, 0.69)],
        (lstm.id, "xml"): [("failed", None, None), ("ok", 0.45, 0.44)],
    }
    for (arch_id, task), outcomes in results.items():
        evs = _evals(store, search.id, arch_id, len(outcomes), task)
        for ev, (status, val, test) in zip(evs, outcomes, strict=True):
            store.record_result(EvalResult(ev.request_id, status, val_accuracy=val, test_accuracy=test, steps=1))
    scores = {(s.architecture_id, s.task): s for s in store.task_scores(search.id)}
    assert scores[(gru.id, "xml")].best_val_accuracy == 0.5
    assert scores[(gru.id, "xml")].test_accuracy == 0.47  # the test score of the best-validation run
    assert (scores[(gru.id, "xml")].evaluations_ok, scores[(gru.id, "xml")].evaluations) == (2, 3)
    assert scores[(lstm.id, "xml")].best_val_accuracy == 0.45
    assert store.baseline(search.id) == {"xml": 0.5, "arithmetic": 0.7}
    assert store.status_counts(search.id) == {"ok": 4, "diverged": 1, "failed": 1}


def test_kept_weights_are_stored_apart(store):
    search = store.create_search("s", {}, 1)
    arch, _ = store.add_architecture(zoo.get("GRU"), "zoo:GRU")
    (ev,) = _evals(store, search.id, arch.id, 1)
    store.record_result(EvalResult(ev.request_id, "ok", val_accuracy=0.5, steps=1, weights=b"\x00\x01weights"))
    assert store.weights(ev.id) == b"\x00\x01weights"


def test_search_names_are_unique(store):
    from rnnsearch.errors import UserError

    store.create_search("same", {}, 0)
    with pytest.raises(UserError, match="already exists"):
        store.create_search("same", {}, 0)
    assert store.get_search("same").config == {}


def test_fingerprints_functional_duplicates_and_curves(store):
    search = store.create_search("s", {}, 1)
    gru, _ = store.add_architecture(zoo.get("GRU"), "zoo:GRU", fingerprint=[0.25, -1.5])
    assert (gru.fingerprint, gru.duplicate_of) == ((0.25, -1.5), None)
    twin, _ = store.add_architecture(zoo.get("MUT1"), "mutation", parent_id=gru.id, duplicate_of=gru.id)
    assert (twin.fingerprint, twin.duplicate_of) == (None, gru.id)
    store.set_fingerprint(twin.id, (0.25, -1.5))
    assert store.get_architecture(twin.id).fingerprint == (0.25, -1.5)
    store.count_functional_duplicate(search.id)
    store.count_functional_duplicate(search.id)
    assert store.get_search("s").functional_duplicates == 2
    (ev,) = _evals(store, search.id, gru.id, 1)
    assert ev.curve == ()
    store.record_result(EvalResult(ev.request_id, "ok", val_accuracy=0.7, steps=20, curve=((10, 0.5), (20, 0.7))))
    assert store.evaluations(search.id)[0].curve == ((10, 0.5), (20, 0.7))
