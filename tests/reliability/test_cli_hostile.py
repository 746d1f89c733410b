"""Every command with missing, malformed and out-of-range arguments: one clear line, a
non-zero exit, no traceback, nothing written."""

import os
import subprocess
import sys

import pytest

BAD = [
    ("zoo", "--hidden", "-1"),
    ("zoo", "--hidden", "many"),
    ("show",),
    ("show", "'; import os #"),
    ("show", "nope.json"),
    ("show", "MUT1", "--hidden", "0"),
    ("export", "-o", "x.py"),
    ("export", "--zoo", "MUT1"),
    ("export", "--zoo", "Bogus", "-o", "x.py"),
    ("export", "--graph", "missing.json", "-o", "x.py"),
    ("export", "--zoo", "MUT1", "-o", "no/dir/x.py"),
    ("train", "--cell", "LSTM"),
    ("train", "--cell", "LSTM", "--task", "music"),
    ("train", "--cell", "LSTM", "--task", "xml", "--preset", "huge"),
    ("train", "--cell", "LSTM", "--task", "xml", "--hparams", "lr=-1"),
    ("train", "--cell", "LSTM", "--task", "xml", "--hparams", "layers=0"),
    ("train", "--cell", "LSTM", "--task", "xml", "--hparams", "bogus=1"),
    ("train", "--cell", "LSTM", "--task", "xml", "--seed", "-5"),
    ("train", "--cell", "LSTM", "--task", "ptb", "--data-dir", "nowhere"),
    ("train", "--cell", "LSTM", "--task", "xml", "--device", "tpu"),
    ("launch", "--preset", "huge", "--db", "sqlite:///r.db"),
    ("launch", "--tasks", "xml,xml", "--db", "sqlite:///r.db"),
    ("launch", "--budget", "evaluations=-3", "--db", "sqlite:///r.db"),
    ("launch", "--budget", "forever", "--db", "sqlite:///r.db"),
    ("launch", "--seeds", "LSTM", "--db", "sqlite:///r.db"),
    ("launch", "--mutate", "2", "--db", "sqlite:///r.db"),
    ("launch", "--db", "mysql://x@y/z"),
    ("launch", "--db", "sqlite:///no/such/dir/r.db"),
    ("leaderboard", "--db", "sqlite:///r.db"),
    ("leaderboard", "--format", "xml", "--db", "sqlite:///r.db"),
    ("leaderboard", "--top", "0", "--db", "sqlite:///r.db"),
    ("report", "--db", "sqlite:///r.db"),
    ("study", "--cells", "LSTM,Bogus", "--db", "sqlite:///r.db", "--local"),
    ("study", "--format", "yaml", "--db", "sqlite:///r.db"),
    ("db", "status", "--db", "not a url"),
    ("db", "upgrade", "--db", "postgresql://nobody@127.0.0.1:1/none"),
    ("db", "frobnicate"),
    ("frobnicate",),
]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_arguments(tmp_path, args):
    r = subprocess.run(
        [sys.executable, "-m", "rnnsearch.cli", *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("Token authentication")]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert list(tmp_path.iterdir()) == [], "something was written"


def test_a_local_ray_listens_on_loopback_only_with_no_dashboard(ray_local):
    """Every listening socket of the embedded Ray (this driver, GCS, raylet, workers, agents)."""
    import ipaddress

    import psutil
    import ray

    ray.get(ray.remote(lambda: 1).remote())  # a worker is up too
    ours = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    listening = [
        c.laddr for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.pid in ours
    ]
    assert len(listening) >= 4, listening  # GCS, raylet, a worker, this driver: the check saw them
    exposed = [a for a in listening if not ipaddress.ip_address(a.ip.removeprefix("::ffff:")).is_loopback]
    assert exposed == []
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert 8265 not in {a.port for a in listening}  # the dashboard's port


def test_the_local_ray_refuses_a_caller_without_its_token(ray_local):
    """Loopback keeps other machines out; the token keeps out other users of this one. A
    gRPC call to the GCS without it is refused; the same call with it (the control) is
    answered."""
    import grpc
    import ray
    from ray._private.authentication.grpc_authentication_client_interceptor import (
        _get_authentication_metadata_tuple,
    )
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    gcs = ray.get_runtime_context().gcs_address
    with grpc.insecure_channel(gcs) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=60)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answer = stub.GetClusterId(
            gcs_service_pb2.GetClusterIdRequest(), timeout=60, metadata=_get_authentication_metadata_tuple()
        )
        assert answer.cluster_id
