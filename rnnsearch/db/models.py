"""The schema: searches, architectures, evaluations (SQLAlchemy 2 typed models)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON}


class Search(Base):
    __tablename__ = "searches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="created")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # decisions taken
    duplicates: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # known candidates skipped
    # candidates not trained: they compute what an evaluated cell computes (functional dedup)
    functional_duplicates: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the launch that runs the search (rnnsearch.search.lease): compared and swapped by token
    lease_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Architecture(Base):
    __tablename__ = "architectures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    graph_json: Mapped[str] = mapped_column(Text)
    formula: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    origin: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("architectures.id"), nullable=True)
    mutation_ops: Mapped[list] = mapped_column(JSON, default=list)
    stage: Mapped[str] = mapped_column(String(40), default="new")
    states: Mapped[int] = mapped_column(Integer, default=1)
    params_per_unit2: Mapped[int] = mapped_column(Integer, default=0)  # n*n blocks: linear terms
    params_per_unit: Mapped[int] = mapped_column(Integer, default=0)  # n-vectors: biases, diagonals
    first_search_id: Mapped[int | None] = mapped_column(ForeignKey("searches.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    fingerprint: Mapped[list | None] = mapped_column(JSON, nullable=True)  # outputs on fixed inputs
    duplicate_of: Mapped[int | None] = mapped_column(Integer, nullable=True)  # computes what that one computes


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("search_id", "architecture_id", "task", "hparams_key", "seed", name="uq_evaluation_identity"),
        Index("ix_evaluations_leaderboard", "search_id", "architecture_id", "task", "status", "val_accuracy"),
        Index("ix_evaluations_status", "search_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    architecture_id: Mapped[int] = mapped_column(ForeignKey("architectures.id"))
    search_id: Mapped[int | None] = mapped_column(ForeignKey("searches.id"), nullable=True)
    task: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(40), default="")
    hparams: Mapped[dict] = mapped_column(JSON)
    hparams_key: Mapped[str] = mapped_column(String(400))
    seed: Mapped[int] = mapped_column(Integer)
    budget: Mapped[dict] = mapped_column(JSON)
    task_options: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    val_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    test_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_perplexity: Mapped[float | None] = mapped_column(Float, nullable=True)
    test_perplexity: Mapped[float | None] = mapped_column(Float, nullable=True)
    steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    wall_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    hidden_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    param_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    device: Mapped[str | None] = mapped_column(String(60), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    extras: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    curve: Mapped[list | None] = mapped_column(JSON, nullable=True)  # [step, val_accuracy] pairs


class Weights(Base):
    """Trained weights of an evaluation, where the search kept them (a table of its own so
    that scans of evaluations never read blobs)."""

    __tablename__ = "weights"

    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
