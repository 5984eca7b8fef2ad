"""Where a number came from: command, git commit, hardware and versions, recorded beside results."""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path


def command() -> str:
    """The command line that started this process, as it could be typed again."""
    return shlex.join([Path(sys.argv[0]).name if sys.argv[0].endswith(".py") else sys.argv[0], *sys.argv[1:]])


def git_commit() -> str:
    """HEAD of the repository the code runs from, with '+dirty' when files differ from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


# CPU features that change how fast (and in which precision) the same code runs
CPU_FLAGS = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")


def cpu() -> dict[str, object]:
    """CPU model and the speed-relevant flags /proc/cpuinfo reports (empty on other systems)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in (platform.processor(), platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"model": model, "flags": [f for f in CPU_FLAGS if f in flags], "amx": {"amx_bf16", "amx_int8"} <= flags}


def hardware() -> str:
    """CPU model, its speed-relevant flags and threads (and GPU when used), e.g. 'Intel Xeon
    [amx_bf16 amx_int8 avx512f], 2 threads of 2 cores'."""
    import torch

    info = cpu()
    flags = f" [{' '.join(info['flags'])}]" if info["flags"] else ""
    desc = f"{info['model']}{flags}, {torch.get_num_threads()} threads of {os.cpu_count()} cores"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


def versions() -> dict[str, str]:
    """Versions of what computes a result, read from the installed packages (nothing is imported:
    an inference process never loads Lightning to name its version)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    found = {"python": platform.python_version(), "torch": str(torch.__version__)}  # a plain str: a model file records it
    for name in ("lightning", "transformers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
