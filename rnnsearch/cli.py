"""The ``rnnsearch`` command: parse, call, print. Nothing imports this module."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

try:  # newer typer carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

from rnnsearch.errors import UserError

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
    """List the zoo: name, states, parameters at width n, formula."""
    from rnnsearch.cells import formula, parameter_count, zoo

    rows = []
    for name in zoo.names():
        g = zoo.get(name)
        rows.append((name, ",".join(g.states), f"{parameter_count(g, hidden):,}", formula(g)))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    typer.echo(f"{'name':{w[0]}}  {'states':{w[1]}}  {f'params@{hidden}':>{max(w[2], 11)}}  formula")
    for r in rows:
        typer.echo(f"{r[0]:{w[0]}}  {r[1]:{w[1]}}  {r[2]:>{max(w[2], 11)}}  {r[3]}")
    typer.echo("also: RHN-<depth> (RHN is depth 3), IndRNN-T<steps> (|u| <= 2^(1/steps))")


@app.command("show")
def show_cmd(
    cell: str = typer.Argument(..., help="a zoo name (see `rnnsearch zoo`) or a graph JSON file"),
    png: Path | None = typer.Option(None, "--png", help="draw the graph to this PNG file"),
    hidden: int = typer.Option(128, "--hidden", min=1, max=65536, help="width n for the parameter count"),
) -> None:
    """Print a cell's formula, states, parameter count and canonical hash; --png draws it."""
    from rnnsearch.cells import canonical_hash, formula_lines, parameter_count, zoo
    from rnnsearch.cells.resolve import resolve_cell

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


@app.command("export")
def export_cmd(
    zoo_name: str | None = typer.Option(None, "--zoo", help="export this zoo cell"),
    graph_file: Path | None = typer.Option(None, "--graph", help="export the cell in this graph JSON file"),
    output: Path = typer.Option(..., "-o", "--output", help="the Python file to write"),
) -> None:
    """Write a cell as one Python file that imports only torch (a Cell and a Layer module)."""
    from rnnsearch.cells.codegen import class_prefix
    from rnnsearch.cells.export import export_file
    from rnnsearch.cells.resolve import resolve_cell

    if (zoo_name is None) == (graph_file is None):
        raise UserError("give exactly one of --zoo NAME or --graph FILE.json")
    name, graph = resolve_cell(zoo_name if zoo_name is not None else str(graph_file))
    if graph_file is not None and not str(graph_file).endswith(".json") and not graph_file.is_file():
        raise UserError(f"graph file not found: {graph_file}")
    _writable(output)
    export_file(graph, output, name=name)
    prefix = class_prefix(name)
    typer.echo(f"wrote {output} ({prefix}Layer, {prefix}Cell)")


def _writable(path: Path) -> None:
    if path.exists() and path.is_dir():
        raise UserError(f"{path} is a folder, not a file")
    if not path.parent.exists() if str(path.parent) else False:
        raise UserError(f"folder {path.parent} does not exist")


def main() -> None:
    try:
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
