"""Which launch runs a search: a lease in the search's row, so two launches never run one search.

A launch acquires the lease before it starts and renews it with each heartbeat (every
10 s). A second launch is refused while the holder lives. A holder on this host whose
process is gone (``kill -9``) is taken over at once; one on another host is taken over
once its heartbeat is ``GRACE_S`` old. Every change is a compare and swap in the store,
so of two launches racing for one lease exactly one wins.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from rnnsearch.db.values import SearchInfo
from rnnsearch.errors import UserError

RENEW_S = 10.0  # how often the holder renews
GRACE_S = 120.0  # twelve missed renewals: a holder on another host is taken as gone


class LeaseHeld(UserError):
    """Another launch runs this search."""


@dataclass(frozen=True)
class Lease:
    search_id: int
    token: str
    host: str
    pid: int


def acquire(store, search: SearchInfo, grace_s: float = GRACE_S) -> Lease:
    """The lease of ``search`` for this process, or :class:`LeaseHeld` when a live launch holds it."""
    lease = Lease(search.id, uuid.uuid4().hex, socket.gethostname(), os.getpid())
    for _ in range(2):  # a lost race: read again and decide once more
        current = store.get_search(search.name)
        if current is None:
            raise UserError(f"no search named {search.name!r}")
        expected = current.lease_token
        if expected is not None and not _stale(current, lease.host, grace_s):
            raise LeaseHeld(_held_message(current, grace_s))
        if store.take_lease(current.id, lease.token, lease.host, lease.pid, expected):
            return lease
    current = store.get_search(search.name)
    raise LeaseHeld(_held_message(current, grace_s) if current is not None else f"search {search.name!r} is busy")


def refuse_if_held(search: SearchInfo, grace_s: float = GRACE_S) -> None:
    """Raise :class:`LeaseHeld` if a live launch holds ``search`` (a look, taking nothing:
    a launch asks before it starts its workers; :func:`acquire` decides for real)."""
    if search.lease_token is not None and not _stale(search, socket.gethostname(), grace_s):
        raise LeaseHeld(_held_message(search, grace_s))


def renew(store, lease: Lease) -> bool:
    """The holder's heartbeat; False: another launch has taken the lease over (stop now)."""
    return store.renew_lease(lease.search_id, lease.token)


def release(store, lease: Lease) -> None:
    """Free the lease, if it is still this one's."""
    store.release_lease(lease.search_id, lease.token)


def _stale(search: SearchInfo, host: str, grace_s: float) -> bool:
    """Whether the holder is gone: a dead process on this host, or a heartbeat ``grace_s`` old."""
    if search.lease_host == host and search.lease_pid is not None and not _alive(search.lease_pid):
        return True
    beat = _utc(search.heartbeat_at or search.lease_since)
    return beat is None or (datetime.now(UTC) - beat).total_seconds() > grace_s


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _utc(when: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; the store writes them in UTC."""
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _held_message(search: SearchInfo, grace_s: float) -> str:
    since = _utc(search.lease_since)
    beat = _utc(search.heartbeat_at)
    since_text = since.strftime("%Y-%m-%d %H:%M:%S UTC") if since else "an unknown time"
    beat_text = (
        f"heartbeat {max(0, round((datetime.now(UTC) - beat).total_seconds()))} s ago" if beat else "no heartbeat"
    )
    return (
        f"search {search.name!r} is already running: held by {search.lease_host} pid {search.lease_pid} "
        f"since {since_text} ({beat_text}); stop that launch first, "
        f"or relaunch once its heartbeat is {grace_s:g} s old"
    )
