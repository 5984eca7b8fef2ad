"""Bundled data sets (STS Benchmark, SICK, MSRP), each beside its publisher's readme and licence."""
from pathlib import Path

RESOURCES = Path(__file__).parent


def resource(name: str) -> str:
    """Absolute path of a bundled file, so configs work from any working directory."""
    return str(RESOURCES / name)
