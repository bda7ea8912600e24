"""memsweep: which Lambda memory size gives the best latency for the money under real load."""

from __future__ import annotations

__version__ = "0.1.0"
