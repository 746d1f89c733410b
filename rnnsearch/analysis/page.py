"""The report page's style sheet and its leaderboard table."""

from __future__ import annotations

import html

import pandas as pd

from rnnsearch.cells.formula import LEGEND

# Cards flow into as many columns as fit (two on a 1400-pixel window, one on an 800-pixel
# one); min(100%, ...) keeps a card from overflowing a window narrower than its minimum.
CSS = """
:root { --gap: 18px; --muted: #5f6368; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1f2328;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1680px; margin: 0 auto; padding: 20px clamp(10px, 3vw, 36px) 48px; }
h1 { font-size: 1.6em; margin: 0.2em 0 0.3em; }
h2 { font-size: 1.25em; margin: 1.6em 0 0.6em; }
h3 { font-size: 1.05em; margin: 0 0 0.5em; }
.lead { font-size: 1.05em; margin: 0.3em 0; }
.note, figcaption, .facts { color: var(--muted); font-size: 0.9em; }
.grid { display: grid; gap: var(--gap); grid-template-columns: repeat(auto-fit, minmax(min(100%, 540px), 1fr)); }
.grid.cells { grid-template-columns: repeat(auto-fit, minmax(min(100%, 560px), 1fr)); }
.card { background: #fff; border: 1px solid #dfe2e6; border-radius: 10px; padding: 14px 16px;
  margin: 0; min-width: 0; }
.card img { display: block; width: 100%; height: auto; }
.card.empty { display: flex; flex-direction: column; }
.card.empty figcaption { color: #1f2328; font-size: 1.1em; margin: auto 0; padding: 1.5em 0.5em; }
figcaption { margin-top: 0.5em; }
.art { text-align: center; overflow-x: auto; }
.art svg, .art img { max-width: 100%; height: auto; }
pre.formula { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f8fa; border-radius: 6px;
  padding: 0.5em 0.7em; font-size: 0.85em; margin: 0.6em 0 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.88em; width: 100%; }
th, td { border-bottom: 1px solid #e5e7ea; padding: 0.35em 0.55em; text-align: right; vertical-align: top; }
th { background: #f6f8fa; position: sticky; top: 0; }
td.l, th.l { text-align: left; }
td.f, td.f2 { text-align: left; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.92em; overflow-wrap: anywhere; }
td.f { min-width: 22em; }
td small, th small { color: var(--muted); display: block; font-weight: normal; }
tr.seed td { background: #f1f8ee; }
/* On a narrow window the formula leaves its column for a row of its own under the numbers. */
tr.fr { display: none; }
tr.fr td { text-align: left; border-bottom: 1px solid #e5e7ea; }
@media (max-width: 1100px) {
  td.f, th.f { display: none; }
  tr.fr { display: table-row; }
  tr.main td { border-bottom: none; padding-bottom: 0.1em; }
}
dl.legend { display: grid; grid-template-columns: max-content 1fr; gap: 0.15em 1em; font-size: 0.88em; margin: 0.4em 0; }
dl.legend dt { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
dl.legend dd { margin: 0; color: var(--muted); }
"""


def _fmt(v, digits: int = 4) -> str:
    return "–" if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA else f"{v:.{digits}f}"


def leaderboard_table(board: pd.DataFrame, tasks: list[str]) -> str:
    """Rank, id, name, each task's best accuracy (and its ratio to the GRU's below it),
    fitness, evaluations, parameters, stage and the formula, one line per formula line."""
    e = html.escape
    rows = []
    for _, r in board.iterrows():
        formula = "<br>".join(e(line) for line in str(r["formula"]).split("; "))
        seed = " seed" if r.get("origin") != "mutation" else ""
        tds = [f"<td>{int(r['rank'])}</td>", f"<td>{int(r['id'])}</td>", f'<td class="l">{e(str(r["name"]))}</td>']
        tds += [f"<td>{_fmt(r.get(t))}<small>{_fmt(r.get(f'{t}_rel'), 3)}</small></td>" for t in tasks]
        tds += [f"<td><b>{_fmt(r['fitness'], 3)}</b></td>", f"<td>{int(r['evaluations'])}</td>"]
        tds += [f"<td>{int(r['parameters']):,}</td>", f'<td class="l">{e(str(r["stage"]))}</td>']
        tds.append(f'<td class="f">{formula}</td>')
        rows.append(f'<tr class="main{seed}">{"".join(tds)}</tr>')
        rows.append(f'<tr class="fr{seed}"><td></td><td colspan="{len(tds) - 1}" class="f2">{formula}</td></tr>')
    header = (
        '<tr><th>rank</th><th>id</th><th class="l">name</th>'
        + "".join(f"<th>{e(t)}<small>÷GRU</small></th>" for t in tasks)
        + '<th>fitness</th><th>evals</th><th>params<small>n=128</small></th><th class="l">stage</th>'
        + '<th class="l f">formula</th></tr>'
    )
    return (
        f'<div class="scroll"><table><thead>{header}</thead><tbody>{"".join(rows)}</tbody></table></div>'
        '<p class="note">Per task: the best validation accuracy, and below it that accuracy divided by the '
        "GRU's. Seeds have a green background.</p>"
    )


def notation() -> str:
    """The formulas' notation, as ``rnnsearch show --legend`` prints it."""
    e = html.escape
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in LEGEND)
    return f'<details><summary>How to read the formulas</summary><dl class="legend">{items}</dl></details>'
