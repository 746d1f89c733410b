"""A search's lease: one launch runs a search; a dead holder is taken over, a live one refuses."""

import os
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC

import pytest

from rnnsearch.db import Store
from rnnsearch.errors import UserError
from rnnsearch.search import lease as leases
from rnnsearch.search.lease import Lease, LeaseHeld


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


@pytest.fixture
def search(store):
    return store.create_search("demo", {}, 0)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_acquire_refuse_release_and_acquire_again(store, search):
    first = leases.acquire(store, search)
    assert (first.search_id, first.host, first.pid) == (search.id, socket.gethostname(), os.getpid())
    held = store.get_search("demo")
    assert (held.lease_host, held.lease_pid, held.lease_token) == (first.host, first.pid, first.token)
    assert held.lease_since is not None and held.heartbeat_at is not None

    with pytest.raises(LeaseHeld) as refused:  # the holder (this process) is alive
        leases.acquire(store, search)
    message = str(refused.value)
    assert isinstance(refused.value, UserError) and "\n" not in message
    assert "'demo' is already running" in message
    assert f"held by {first.host} pid {first.pid}" in message
    since = held.lease_since.replace(tzinfo=UTC) if held.lease_since.tzinfo is None else held.lease_since
    assert f"since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC (heartbeat " in message
    assert re.search(
        r"heartbeat \d s ago\); stop that launch first, or relaunch once its heartbeat is 120 s old$", message
    )
    assert store.get_search("demo").lease_token == first.token  # the refusal changed nothing

    assert leases.renew(store, first)
    leases.release(store, first)
    freed = store.get_search("demo")
    assert (freed.lease_token, freed.lease_host, freed.lease_pid, freed.lease_since) == (None, None, None, None)
    second = leases.acquire(store, search)
    assert second.token != first.token
    assert not leases.renew(store, first)
    leases.release(store, first)  # a stale holder frees nothing
    assert store.get_search("demo").lease_token == second.token


def test_a_dead_process_on_this_host_is_taken_over_at_once(store, search):
    pid = _dead_pid()
    assert store.take_lease(search.id, "killed", socket.gethostname(), pid, None)
    taken = leases.acquire(store, search)  # heartbeat fresh, but its process is gone: kill -9, relaunch
    assert store.get_search("demo").lease_token == taken.token
    assert not store.renew_lease(search.id, "killed")


def test_another_hosts_holder_is_taken_over_once_its_heartbeat_is_old(store, search):
    assert store.take_lease(search.id, "remote", "elsewhere", os.getpid() + 10**6, None)
    with pytest.raises(LeaseHeld, match="held by elsewhere pid"):
        leases.acquire(store, search, grace_s=0.2)
    assert store.renew_lease(search.id, "remote")
    time.sleep(0.5)
    taken = leases.acquire(store, search, grace_s=0.2)
    assert store.get_search("demo").lease_host == socket.gethostname()
    assert not leases.renew(store, Lease(search.id, "remote", "elsewhere", 1))  # the loser learns it lost
    assert leases.renew(store, taken)


def test_compare_and_swap_needs_the_expected_token(store, search):
    assert store.take_lease(search.id, "a", "h", 1, None)
    assert not store.take_lease(search.id, "b", "h", 2, None)  # not free
    assert not store.take_lease(search.id, "b", "h", 2, "wrong")
    assert store.take_lease(search.id, "b", "h", 2, "a")
    assert (store.get_search("demo").lease_token, store.get_search("demo").lease_pid) == ("b", 2)


def _race(n, attempt):
    barrier = threading.Barrier(n)
    outcomes = [None] * n

    def run(i):
        barrier.wait()
        outcomes[i] = attempt(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


def test_racing_compare_and_swaps_one_wins(db_url, search):
    stores = [Store(db_url) for _ in range(4)]
    try:
        won = _race(4, lambda i: stores[i].take_lease(search.id, f"t{i}", "h", i, None))
    finally:
        for s in stores:
            s.close()
    assert sorted(won) == [False, False, False, True]


def test_racing_acquires_one_wins(db_url, search):
    stores = [Store(db_url) for _ in range(4)]

    def attempt(i):
        try:
            return leases.acquire(stores[i], search)
        except LeaseHeld as e:
            return e

    try:
        outcomes = _race(4, attempt)
        winners = [o for o in outcomes if isinstance(o, Lease)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, LeaseHeld) for o in outcomes if o not in winners)
        assert stores[0].get_search("demo").lease_token == winners[0].token
    finally:
        for s in stores:
            s.close()
