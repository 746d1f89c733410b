"""A writer records results while another process reads the leaderboard: no error, no lost row."""

import subprocess
import sys
import textwrap

from rnnsearch.cells import zoo
from rnnsearch.db import NewEvaluation, Store

N = 300

WRITER = textwrap.dedent(
    """
    import sys
    from rnnsearch.db import Store
    from rnnsearch.tasks.api import EvalResult
    store = Store(sys.argv[1])
    for i, rid in enumerate(sys.argv[2].split(",")):
        store.record_result(EvalResult(rid, "ok", val_accuracy=i / 1000, test_accuracy=i / 2000, steps=i))
    print("wrote", i + 1)
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    from rnnsearch.db import Store
    store = Store(sys.argv[1])
    reads, seen = 0, 0
    deadline = time.time() + 300
    while time.time() < deadline:
        scores = store.task_scores()
        seen = store.status_counts().get("ok", 0)
        reads += 1
        if reads == 1:
            print("ready", flush=True)  # the writer starts now: every later read overlaps it
        if seen == int(sys.argv[2]):
            break
    print("reads", reads, "seen", seen)
    """
)


def test_writer_and_leaderboard_reader_side_by_side(db_url):
    with Store(db_url) as store:
        search = store.create_search("concurrent", {}, 0)
        arch, _ = store.add_architecture(zoo.get("GRU"), "zoo:GRU")
        evs = store.create_evaluations(
            search.id, [NewEvaluation(arch.id, "xml", {"learning_rate": i}, 0, {}) for i in range(N)]
        )
    ids = ",".join(e.request_id for e in evs)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, db_url, str(N)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_url, ids], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    w_out, w_err = writer.communicate(timeout=600)
    r_out, r_err = reader.communicate(timeout=600)
    assert writer.returncode == 0, w_err
    assert reader.returncode == 0, r_err
    assert w_out.split() == ["wrote", str(N)]
    reads = int(r_out.split()[1])
    assert reads > 1 and r_out.split()[3] == str(N)  # read before, (during) and after the writes
    with Store(db_url) as store:
        rows = store.evaluations(search.id)
        assert len(rows) == N and all(r.status == "ok" for r in rows)
        assert sorted(r.steps for r in rows) == list(range(N))
        (score,) = store.task_scores(search.id)
        assert score.best_val_accuracy == (N - 1) / 1000 and score.evaluations_ok == N
