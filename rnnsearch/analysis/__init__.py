"""Leaderboard frames, plots and reports built from the store."""

from rnnsearch.analysis.frames import board, leaderboard

__all__ = ["board", "leaderboard"]
