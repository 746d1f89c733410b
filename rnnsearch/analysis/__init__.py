"""Leaderboard frames, plots and reports built from the store."""

from rnnsearch.analysis.frames import fitness_history, leaderboard

__all__ = ["fitness_history", "leaderboard"]
