"""Where training runs: Ray (local or a cluster) and an in-process runner."""

from rnnsearch.workers.base import LocalRunner, Runner
from rnnsearch.workers.ray_runner import RayRunner, init_ray

__all__ = ["LocalRunner", "RayRunner", "Runner", "init_ray"]
