"""What a search does: presets for its stages, and the budget that ends it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from rnnsearch.errors import UserError
from rnnsearch.tasks.presets import get_preset
from rnnsearch.tasks.registry import TASKS


@dataclass(frozen=True)
class SearchBudget:
    """The search ends at the first limit reached (0: no limit). ``minutes`` counts this
    launch's wall time; the others count the whole search across relaunches."""

    evaluations: int = 0
    architectures: int = 0
    minutes: float = 0.0

    @classmethod
    def parse(cls, text: str) -> SearchBudget:
        """``evaluations=500,architectures=50,minutes=30`` (any subset); a bare number
        means evaluations."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                key, value = "evaluations", key
            key = {"evals": "evaluations", "archs": "architectures", "min": "minutes"}.get(key.strip(), key.strip())
            if key not in ("evaluations", "architectures", "minutes"):
                raise UserError(f"bad --budget {part!r}: use evaluations=N, architectures=N or minutes=M")
            try:
                v = float(value)
            except ValueError:
                raise UserError(f"bad --budget {part!r}: {value!r} is not a number") from None
            if v < 0 or v != v:
                raise UserError(f"bad --budget {part!r}: must be >= 0")
            values[key] = v
        if not values:
            raise UserError("--budget is empty")
        return cls(int(values.get("evaluations", 0)), int(values.get("architectures", 0)), values.get("minutes", 0.0))

    def __str__(self) -> str:
        parts = [f"{k}={getattr(self, k):g}" for k in ("evaluations", "architectures", "minutes") if getattr(self, k)]
        return ",".join(parts) or "unlimited"


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search; stored with it so that a relaunch resumes it."""

    name: str
    preset: str = "laptop"
    tasks: tuple[str, ...] = ("arithmetic", "xml", "ptb")
    seed: int = 0
    seeds: tuple[str, ...] = ("LSTM", "GRU")
    population: int = 100
    mutate_probability: float = 0.8  # else re-evaluate a member on new settings
    settings_per_task: int = 20
    baseline_settings: int = 20  # the GRU's settings per task (the yardstick)
    memorize_settings: int = 2
    memorize_threshold: float = 0.95
    stop_ratio: float = 0.9  # task 1 stops a candidate below this fraction of the GRU's best
    data_dir: str | None = None
    eval_max_seconds: float | None = None  # caps each evaluation's training time in a search
    eval_max_steps: dict[str, int] = field(default_factory=dict)  # per task: steps, not seconds, so results repeat
    keep_weights: bool = False  # store the trained cell weights of every evaluation
    ops: str = "paper"  # the op set mutations draw from: "paper" or "extended" (rnnsearch.cells.ops)
    strategy: str = "paper"  # what to try next: rnnsearch.search.searchers.STRATEGIES
    tournament: int = 0  # regularized evolution's sample size (0: a quarter of the population, at least 2)
    early_stop: bool = True  # stop a setting that trails the GRU's learning curve (rnnsearch.search.early_stop)
    early_stop_eta: int = 3  # ASHA's reduction factor: rungs at eval_every * eta**k, the top 1/eta continue
    functional_dedup: bool = True  # fingerprint a candidate's outputs; a functional duplicate is not trained
    kind: str = "search"  # "study": no mutations; every seed gets the same settings; "calibration": see below
    seed_graphs: dict[str, str] = field(default_factory=dict)  # seeds that are not zoo cells: name -> graph JSON
    budget: SearchBudget = field(default_factory=SearchBudget)
    # a calibration is a study run ``replicates`` times (each on its own draw of settings),
    # then each cell's best setting per task trained again at ``reference_budget`` times
    # the steps (0: no reference); memorize may be one of its tasks
    replicates: int = 1
    reference_budget: float = 0.0

    def __post_init__(self) -> None:
        get_preset(self.preset)
        if not self.tasks:
            raise UserError("--tasks is empty")
        # memorize is a search's filter, not one of its tasks; a calibration measures it too
        usable = [t for t in TASKS if t != "memorize" or self.kind == "calibration"]
        for t in self.tasks:
            if t not in usable:
                raise UserError(f"unknown search task {t!r} (use {', '.join(usable)})")
        if len(set(self.tasks)) != len(self.tasks):
            raise UserError("--tasks names a task twice")
        if "GRU" not in self.seeds:
            raise UserError("the GRU must be among the seeds: it is the yardstick of fitness")
        if self.kind not in ("search", "study", "calibration"):
            raise UserError(f"unknown kind {self.kind!r}")
        if self.replicates < 1 or self.replicates > 100:
            raise UserError("--seeds must be between 1 and 100")
        if self.reference_budget and not 1 <= self.reference_budget <= 1000:
            raise UserError("--reference-budget must be 0 (none) or between 1 and 1000")
        from rnnsearch.search.searchers import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise UserError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if self.tournament < 0:
            raise UserError("--tournament must be 0 (a quarter of the population) or more")
        if self.early_stop_eta < 2:
            raise UserError("early_stop_eta must be at least 2")
        if self.ops not in ("paper", "extended"):
            raise UserError(f"--ops must be paper or extended, not {self.ops!r}")
        if not 0 <= self.mutate_probability <= 1:
            raise UserError("--mutate must be between 0 and 1")
        for name in ("population", "settings_per_task", "baseline_settings", "memorize_settings"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["tasks"], d["seeds"] = list(self.tasks), list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SearchConfig:
        d = dict(d)
        # a search stored before these existed continues as it ran: no early stopping, no dedup
        d.setdefault("early_stop", False)
        d.setdefault("functional_dedup", False)
        d["tasks"], d["seeds"] = tuple(d["tasks"]), tuple(d["seeds"])
        d["budget"] = SearchBudget(**d.get("budget", {}))
        return cls(**d)


# Stage sizes per preset: smoke is for plumbing (its memorize bar sits just under chance,
# 1/26, so that candidates reach every stage in seconds); laptop's bar is calibrated (see
# tasks/presets.py), paper uses the paper's 95%.
PRESET_STAGES = {
    "smoke": dict(settings_per_task=2, baseline_settings=2, memorize_settings=1, memorize_threshold=0.03),
    "laptop": dict(settings_per_task=4, baseline_settings=6, memorize_settings=2, memorize_threshold=0.4),
    "paper": dict(settings_per_task=20, baseline_settings=100, memorize_settings=3, memorize_threshold=0.95),
}


def config_for(name: str, preset: str, **overrides) -> SearchConfig:
    if preset not in PRESET_STAGES:
        get_preset(preset)  # raises the clear error
    values = {**PRESET_STAGES[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return SearchConfig(name=name, preset=preset, **values)
