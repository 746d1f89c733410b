import json
import subprocess
import sys
import textwrap

import pytest
import torch

from rnnsearch.cells import CellGraph, compile_cell, export_file, export_source, zoo


@pytest.mark.parametrize("name", ["MUT1", "LSTM", "FGR", "IndRNN-T10"])
def test_exported_file_runs_in_a_fresh_process_with_only_torch(tmp_path, name):
    graph = zoo.get(name)
    path = export_file(graph, tmp_path / "cell.py", name=name)
    torch.manual_seed(0)
    layer = compile_cell(graph, 7, name=name)
    torch.save(layer.state_dict(), tmp_path / "weights.pt")
    x = torch.randn(5, 2, 7)
    torch.save(x, tmp_path / "x.pt")
    torch.save(layer(x)[0], tmp_path / "expected.pt")
    prefix = name.replace("-", "_")
    script = textwrap.dedent(
        f"""
        import importlib.util, sys, torch
        torch.set_num_threads({torch.get_num_threads()})  # bit-identical needs the same reduction order
        spec = importlib.util.spec_from_file_location("cell", r"{path}")
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        layer = mod.{prefix}Layer(7)
        layer.load_state_dict(torch.load(r"{tmp_path / "weights.pt"}"))
        out, state = layer(torch.load(r"{tmp_path / "x.pt"}"))
        assert torch.equal(out, torch.load(r"{tmp_path / "expected.pt"}")), "outputs differ"
        h, st = mod.{prefix}Cell(7)(torch.zeros(2, 7))
        assert h.shape == (2, 7)
        leaked = [m for m in sys.modules if m.split(".")[0] in ("rnnsearch", "networkx", "numpy_", "ray")]
        assert not leaked, leaked
        print("ok")
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_the_exported_source_imports_only_torch():
    src = export_source(zoo.get("GRU"), "GRU")
    imports = [ln.strip() for ln in src.splitlines() if ln.strip().startswith(("import ", "from "))]
    assert imports == ["import torch", "from torch import nn"]


def test_hostile_names_never_reach_the_source(tmp_path):
    payload = "__import__('os').system('touch PWNED')\n\"\"\"'"
    data = {
        "schema": 1,
        "states": ["h"],
        "nodes": [
            {"id": payload, "op": "linear", "inputs": ["x", "h"]},
            {"id": payload + "2", "op": "tanh", "inputs": [payload]},
        ],
        "outputs": {"h": payload + "2"},
    }
    graph = CellGraph.from_dict(json.loads(json.dumps(data)))
    src = export_source(graph, name=payload)
    assert "__import__" not in src and "PWNED" not in src
    compile_cell(graph, 4, name=payload)(torch.zeros(2, 1, 4))
    assert not (tmp_path / "PWNED").exists()
