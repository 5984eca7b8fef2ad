"""Where a number came from: command, git commit, hardware and versions, recorded beside results."""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch


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


def hardware() -> str:
    """CPU model and threads (and GPU when used), e.g. 'Intel Xeon, 2 threads'."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu}, {torch.get_num_threads()} threads of {os.cpu_count()} cores"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


def versions() -> dict[str, str]:
    import lightning
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "lightning": lightning.__version__, "transformers": transformers.__version__}
