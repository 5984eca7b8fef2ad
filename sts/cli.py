"""Shared behaviour of the entry points: user errors become one line on stderr and exit 2."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from sts.errors import STSError

T = TypeVar("T")


def run(fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except STSError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
