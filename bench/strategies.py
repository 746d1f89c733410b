"""Search strategies against each other: `paper`, `regularized` and `random`, each run as a
real `rnnsearch launch` on the same preset, tasks, time budget and seed, one after another
(never in parallel: it is a CPU benchmark), each against its own fresh SQLite database.

Per run it prints: candidates made by mutation (degenerate and duplicates included), how
many completed every task, the best fitness of a mutated candidate (min over tasks of its
best accuracy / the GRU's), the best-so-far at 25, 50, 75 and 100% of the budget (minutes
since the search queued its first evaluation; with a budget in architectures, of the run's
span), evaluations finished (of which stopped early: they trailed the GRU's learning
curve), functional duplicates (not trained) and the CPU time they saved, and degenerate
candidates. A duplicate's saving is estimated as the summed wall time of the evaluations,
in the same search, of the cell it duplicates. Then the mean over seeds per strategy, and
functional dedup (FEC) totals over all runs: hits, hit rate (hits / (hits + mutated
candidates trained)), CPU-minutes saved and CPU-minutes of training spent (summed wall
time of every evaluation).

    python bench/strategies.py [--preset laptop] [--tasks arithmetic,xml] [--minutes 8]
        [--seeds 0,1] [--no-early-stop] [--no-dedup] [--local] [--out DIR]
    python bench/strategies.py --dry-run     # smoke preset, 3 architectures, seed 0, --local

With --out DIR the databases, the launches' logs and strategies.md (the tables as markdown)
are kept in DIR; otherwise everything goes in a temporary folder that is removed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rnnsearch.search.searchers import STRATEGIES  # the names, from the one registry

FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def cpu_model() -> str:
    """lscpu's model name (``/proc/cpuinfo`` or the platform where there is no lscpu)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "model name":
                return value.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class RunResult:
    strategy: str
    seed: int
    ok: bool  # the launch exited 0
    wall_min: float
    made: int = 0  # candidates made by mutation (degenerate and duplicates included)
    trained: int = 0  # of those, not degenerate and not a duplicate
    complete: int = 0
    best: float | None = None
    progress: tuple[float | None, ...] = (None,) * len(FRACTIONS)
    finished: int = 0
    stopped: int = 0
    duplicates: int = 0
    saved_s: float = 0.0
    spent_s: float = 0.0
    degenerate: int = 0


def launch_command(args, strategy: str, seed: int, url: str) -> list[str]:
    cmd = [sys.executable, "-m", "rnnsearch.cli", "launch", "--db", url, "--name", f"{strategy}-s{seed}"]
    cmd += ["--strategy", strategy, "--seed", str(seed), "--preset", args.preset, "--tasks", args.tasks]
    cmd += ["--budget", args.budget]
    cmd.append("--early-stop" if args.early_stop else "--no-early-stop")
    cmd.append("--dedup" if args.dedup else "--no-dedup")
    if args.local:
        cmd.append("--local")
    return cmd


def run_launch(cmd: list[str], log: Path, timeout_s: float) -> tuple[int, float]:
    """Run one launch to its end (its output to ``log``); returns (exit code, minutes)."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launch and the Ray processes it started
            proc.wait()
            f.write(f"\n[bench/strategies.py: killed after {timeout_s:.0f} s]\n")
            rc = 124
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGINT)  # a launch stops cleanly on Ctrl-C
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise
    return rc, (time.perf_counter() - t0) / 60


def measure(url: str, name: str, strategy: str, seed: int, wall_min: float, budget_min: float | None) -> RunResult:
    """Read one finished launch's database."""
    from rnnsearch.analysis.frames import leaderboard, scope
    from rnnsearch.analysis.progress import MUTATION, mutant_history
    from rnnsearch.db import Store
    from rnnsearch.states import FINISHED, Stage, Status

    with Store(url, create=False) as store:
        sc = scope(store, name)
        sid = sc.search_id
        evs = store.evaluations(sid)
        by_stage = store.stage_counts(sid)
        archs = store.architectures(search_id=sid)
        board = leaderboard(store, name) if evs else None
        history = mutant_history(store, sc, board, evs) if board is not None else None

    done = [e for e in evs if e.status in FINISHED]
    spent: dict[int, float] = {}
    for e in done:
        spent[e.architecture_id] = spent.get(e.architecture_id, 0.0) + (e.wall_s or 0.0)
    by_id = {a.id: a for a in archs}
    dups = [a for a in archs if a.stage == Stage.DUPLICATE]
    saved = 0.0
    for a in dups:
        target, hops = a.duplicate_of, 0
        while target in by_id and by_id[target].duplicate_of is not None and hops < 100:
            target, hops = by_id[target].duplicate_of, hops + 1  # a duplicate of a duplicate: the cell trained
        saved += spent.get(target, 0.0) if target is not None else 0.0

    best = None
    if board is not None:
        fit = board.loc[(board["origin"] == MUTATION) & board["fitness"].notna(), "fitness"]
        best = float(fit.max()) if len(fit) else None
    progress: list[float | None] = [None] * len(FRACTIONS)
    if history is not None and len(history):
        span = budget_min or float(history["minutes"].max())
        for i, frac in enumerate(FRACTIONS):
            upto = history if frac == 1.0 else history[history["minutes"] <= frac * span]
            progress[i] = float(upto["best"].max()) if len(upto) else None
    made = sum(by_stage.values())
    skipped = by_stage.get(Stage.DEGENERATE, 0) + by_stage.get(Stage.DUPLICATE, 0)
    return RunResult(
        strategy,
        seed,
        True,
        wall_min,
        made=made,
        trained=made - skipped,
        complete=by_stage.get(Stage.COMPLETE, 0),
        best=best,
        progress=tuple(progress),
        finished=len(done),
        stopped=sum(e.status == Status.STOPPED for e in done),
        duplicates=len(dups),
        saved_s=saved,
        spent_s=sum(spent.values()),
        degenerate=sum(a.stage == Stage.DEGENERATE for a in archs),
    )


# -- the table ------------------------------------------------------------------------
COLUMNS = (  # (header, width): 94 columns with the spaces between
    ("strategy", 11),
    ("seed", 4),
    ("made", 5),
    ("compl", 5),
    ("best", 6),
    ("@25%", 6),
    ("@50%", 6),
    ("@75%", 6),
    ("@100%", 6),
    ("evals", 6),
    ("stop", 5),
    ("dups", 5),
    ("saved", 6),
    ("degen", 5),
)
LEGEND = (
    "made: candidates made by mutation; compl: of those, complete on every task; best: best fitness of a "
    "mutated candidate; @N%: best-so-far at N% of the budget; evals: evaluations finished (stop: of which "
    "stopped early); dups: functional duplicates (not trained); saved: CPU-minutes their training would "
    "have cost; degen: degenerate candidates (not trained)"
)


def fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def run_cells(r: RunResult) -> list[str]:
    if not r.ok:
        return [r.strategy, str(r.seed), "launch failed"] + [""] * (len(COLUMNS) - 3)
    return [
        r.strategy,
        str(r.seed),
        str(r.made),
        str(r.complete),
        fmt(r.best),
        *(fmt(p) for p in r.progress),
        str(r.finished),
        str(r.stopped),
        str(r.duplicates),
        f"{r.saved_s / 60:.1f}",
        str(r.degenerate),
    ]


def summary_cells(strategy: str, runs: list[RunResult]) -> list[str]:
    ok = [r for r in runs if r.ok]
    bests = [r.best for r in ok if r.best is not None]
    cells = [""] * len(COLUMNS)
    cells[0], cells[1] = strategy, "mean"
    if ok:
        cells[2] = f"{statistics.mean(r.made for r in ok):.1f}"
        cells[3] = f"{statistics.mean(r.complete for r in ok):.1f}"
        cells[4] = fmt(statistics.mean(bests)) if bests else "-"
    return cells


def text_table(rows: list[list[str]], summary: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        parts = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS, strict=True))]
        return " ".join(parts).rstrip()

    width = sum(w for _, w in COLUMNS) + len(COLUMNS) - 1
    out = [line([h for h, _ in COLUMNS]), "-" * width]
    out += [line(r) for r in rows]
    out += ["-" * width] + [line(s) for s in summary]
    return "\n".join(out)


def markdown_table(rows: list[list[str]], summary: list[list[str]]) -> str:
    out = ["| " + " | ".join(h for h, _ in COLUMNS) + " |"]
    out.append("|" + "|".join(":---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|")
    for cells in rows + summary:
        out.append("| " + " | ".join(c or " " for c in cells) + " |")
    return "\n".join(out)


def fec_lines(runs: list[RunResult]) -> list[str]:
    ok = [r for r in runs if r.ok]
    hits = sum(r.duplicates for r in ok)
    trained = sum(r.trained for r in ok)
    rate = hits / (hits + trained) if hits + trained else 0.0
    saved = sum(r.saved_s for r in ok) / 60
    spent = sum(r.spent_s for r in ok) / 60
    share = f" ({saved / spent:.0%} of the training spent)" if spent else ""
    return [
        f"functional dedup (FEC), all runs: {hits} hits, hit rate {rate:.1%} (of {hits + trained}: hits + trained)",
        f"CPU-minutes saved {saved:.1f}{share}; CPU-minutes of training spent {spent:.1f}",
    ]


def wrap(text: str, width: int = 100) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--tasks", default="arithmetic,xml")
    ap.add_argument("--minutes", type=float, default=8.0, help="each launch's budget (--budget minutes=M)")
    ap.add_argument("--seeds", default="0,1", help="search seeds; every strategy runs with each")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--early-stop", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--local", action="store_true", help="run evaluations in the launch's process (no Ray)")
    ap.add_argument("--out", type=Path, default=None, help="keep databases, logs and strategies.md here")
    ap.add_argument(
        "--dry-run", action="store_true", help="smoke preset, --budget architectures=3, seed 0, --local: seconds"
    )
    args = ap.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        sys.exit(f"error: --seeds {args.seeds!r}: use comma-separated integers, e.g. 0,1")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.dry_run:
        args.preset, args.local, seeds = "smoke", True, [0]
        args.budget, budget_min, timeout_s = "architectures=3", None, 600.0
    else:
        if args.minutes <= 0:
            sys.exit("error: --minutes must be > 0")
        args.budget, budget_min = f"minutes={args.minutes:g}", args.minutes
        timeout_s = 2 * 60 * args.minutes + 900  # the budget, the seeds' start and what is in flight at its end
    if not seeds or not strategies:
        sys.exit("error: nothing to run (--seeds and --strategies must name at least one)")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        sys.exit(f"error: unknown --strategies {', '.join(unknown)} (known: {', '.join(STRATEGIES)})")

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        folder, cleanup = args.out, False
        taken = [f"{s}-s{k}.db" for s in strategies for k in seeds if (folder / f"{s}-s{k}.db").exists()]
        if taken:
            sys.exit(f"error: {folder} already holds {', '.join(taken)}: each run needs a fresh database")
    else:
        folder, cleanup = Path(tempfile.mkdtemp(prefix="rnnsearch-strategies-")), True

    switches = f"early stop {'on' if args.early_stop else 'off'}, dedup {'on' if args.dedup else 'off'}"
    header = [
        f"CPU: {cpu_model()} ({os.cpu_count()} cores)",
        f"preset {args.preset}, tasks {args.tasks}, budget {args.budget} per run, seeds {','.join(map(str, seeds))}",
        f"{switches}; evaluations {'in-process (--local)' if args.local else 'on a local Ray'}; one run at a time",
    ]
    for h in header:
        print(h)
    sys.stdout.flush()

    runs: list[RunResult] = []
    try:
        for seed in seeds:
            for strategy in strategies:
                name = f"{strategy}-s{seed}"
                url = f"sqlite:///{folder / (name + '.db')}"
                log = folder / f"{name}.log"
                print(f"  {name}: running ...", end="", flush=True)
                rc, wall = run_launch(launch_command(args, strategy, seed, url), log, timeout_s)
                result = None
                if rc == 0:
                    try:
                        result = measure(url, name, strategy, seed, wall, budget_min)
                    except Exception as e:  # a database the launch left unreadable: report it, go on
                        print(f" {wall:.1f} min, exit 0, but its database could not be read: {e}")
                if result is None:
                    if rc != 0:
                        print(f" {wall:.1f} min, FAILED (exit {rc}); the end of {log.name}:")
                        tail = log.read_text(errors="replace").splitlines()[-15:]
                        print("\n".join("    " + t for t in tail), file=sys.stderr)
                    result = RunResult(strategy, seed, False, wall)
                else:
                    print(f" {wall:.1f} min")
                runs.append(result)

        rows = [run_cells(r) for s in strategies for r in runs if r.strategy == s]
        summary = [summary_cells(s, [r for r in runs if r.strategy == s]) for s in strategies]
        fec = fec_lines(runs)
        print()
        print(text_table(rows, summary))
        print()
        print(wrap(LEGEND))
        print()
        print("\n".join(fec))
        if args.out is not None:
            md = ["# Search strategies", "", *(h + "  " for h in header), "", markdown_table(rows, summary), ""]
            md += [LEGEND, "", *(f + "  " for f in fec), ""]
            (args.out / "strategies.md").write_text("\n".join(md))
            print(f"\nmarkdown: {args.out / 'strategies.md'}")
    finally:
        if cleanup:
            shutil.rmtree(folder, ignore_errors=True)
    if not all(r.ok for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
