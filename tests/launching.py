"""The smoke-search command line that the kill and signal tests run as a real process."""

import sys


def launch_command(url: str, budget: str, name: str = "s") -> list[str]:
    return [
        sys.executable,
        "-m",
        "rnnsearch.cli",
        "launch",
        "--db",
        url,
        "--local",
        "--preset",
        "smoke",
        "--tasks",
        "arithmetic,xml",
        "--budget",
        budget,
        "--name",
        name,
    ]
