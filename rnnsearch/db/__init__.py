"""The store: SQLAlchemy schema, Alembic migrations, and the one API the rest uses."""

from rnnsearch.db.engine import DEFAULT_URL, default_url
from rnnsearch.db.store import AlreadyRecorded, Store, UnknownEvaluation, request_id_for
from rnnsearch.db.values import ArchitectureInfo, EvaluationInfo, NewEvaluation, SearchInfo, TaskScore

__all__ = [
    "DEFAULT_URL",
    "AlreadyRecorded",
    "ArchitectureInfo",
    "EvaluationInfo",
    "NewEvaluation",
    "SearchInfo",
    "Store",
    "TaskScore",
    "UnknownEvaluation",
    "default_url",
    "request_id_for",
]
