"""AWS Lambda's published numbers that memsweep relies on, in one place.

Both sides import them: the scenario format checks a memory size against Lambda's range,
and the local stack (runner/emulator) refuses sizes outside it and turns memory into a CPU
share. Standard library only, no runner imports, so any module can import it without a cycle.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# "You can configure memory between 128 MB and 10,240 MB in 1-MB increments" (AWS Lambda
# Developer Guide, "Configure Lambda function memory"; also "Lambda quotas": function memory
# allocation 128 MB to 10,240 MB).
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10_240
# "At 1,769 MB, a function has the equivalent of one vCPU": CPU is allocated in proportion to
# memory (same page). The local stack's CFS quota is memory/MB_PER_VCPU of one CPU
# (runner/emulator/_cgroups.py; docs/ARCHITECTURE.md, section 4.1).
MB_PER_VCPU = 1769

# The axes a sweep can move beside memory. API Gateway's two API types for a Lambda proxy: a
# REST API (payload format 1.0, API keys and usage plans) and an HTTP API (payload format 2.0,
# cheaper, no API keys). Lambda's two instruction set architectures.
ApiType = Literal["rest", "http"]
Architecture = Literal["x86_64", "arm64"]
API_TYPES: Final[tuple[ApiType, ...]] = get_args(ApiType)
ARCHITECTURES: Final[tuple[Architecture, ...]] = get_args(Architecture)
# How labels, the report and the exports name an API type.
API_NAMES: Final[dict[str, str]] = {"rest": "REST API", "http": "HTTP API"}
DEFAULT_API: Final[ApiType] = "rest"  # what a memory-only scenario measures (the tutorial's)
DEFAULT_ARCHITECTURE: Final[Architecture] = "x86_64"
