"""HDR histograms as memsweep writes them: the range, encode, decode, merge, and the structural
check a histogram read from a file passes before hdrh's C decoder sees it.

A leaf: the workers' histograms (runner/load/locustfile.py, which imports nothing from memsweep
and so holds its own copy of the range: tests/test_one_truth.py keeps them equal), the master's
step data, results.json and the statistics all read histograms through this module.
"""

from __future__ import annotations

import base64
import binascii
import struct
import weakref
import zlib
from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

# The workers' histogram range (runner/load/locustfile.py holds the same numbers: it must stay
# importable without this package, for stock `locust --worker -f -`; tests/test_one_truth.py
# keeps them equal): 1 µs to 1 hour, 3 significant figures.
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 3_600_000_000
HDR_DIGITS = 3


def acyclic(histogram: HdrHistogram) -> HdrHistogram:
    """Let reference counting free `histogram` the moment it is dropped.

    hdrh's histogram and its encoder point at each other, so a dropped histogram and its
    counts array (184 KB at 3 digits) waited for the cyclic garbage collector. The master
    decodes several per worker report: between collections they piled up by the dozen and
    fragmented the heap, which glibc then kept (bench/PROFILE.md, "The rest of the growth: a
    reference cycle in hdrh").
    """
    histogram.encoder.histogram = weakref.proxy(histogram)
    return histogram


def empty_histogram() -> HdrHistogram:
    return acyclic(HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS))


def decode(encoded: str) -> HdrHistogram:
    return acyclic(HdrHistogram.decode(encoded.encode()))


def merge(encodings: Iterable[str | None]) -> HdrHistogram:
    total = empty_histogram()
    for encoded in encodings:
        if encoded:
            total.add(decode(encoded))
    return total


def encode(histogram: HdrHistogram) -> str | None:
    return histogram.encode().decode() if histogram.get_total_count() else None


# HDR encodings (hdrh's V2 wire format): an 8-byte header (cookie, length) + zlib of a
# 40-byte payload header and one varint (up to 9 bytes) per counter. At the workers' range
# (runner/py: 1 us to 1 h, 3 digits) there are 23,552 counters: at most 212,008 bytes
# inflated, ~283 KB of base64.
_HDR_COMPRESSION_COOKIE = 0x1C849304
_HDR_ENCODING_COOKIE = 0x1C849303
_HDR_PAYLOAD_HEADER = struct.Struct(">IIIIQQd")
_HDR_MAX_COUNTERS = 23_552
MAX_HISTOGRAM_CHARS = 400_000
_HDR_MAX_INFLATED = _HDR_PAYLOAD_HEADER.size + 9 * _HDR_MAX_COUNTERS


def check(encoded: str) -> int:
    """The count of an HDR encoding at the workers' settings that decodes, or ValueError saying
    why not (its structure is checked before hdrh's C decoder sees it: a results file may come
    from elsewhere)."""
    if len(encoded) > MAX_HISTOGRAM_CHARS:
        raise ValueError(f"longer ({len(encoded):,} characters) than any HDR histogram")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not an HDR histogram (not base64)") from None
    if len(raw) < 8:
        raise ValueError("not an HDR histogram (too short)")
    cookie, length = struct.unpack(">II", raw[:8])
    if cookie & ~0xF0 != _HDR_COMPRESSION_COOKIE or length != len(raw) - 8:
        raise ValueError("not an HDR histogram (bad header)")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(raw[8:], _HDR_MAX_INFLATED + 1)
    except zlib.error:
        raise ValueError("corrupt HDR histogram (its zlib stream does not inflate)") from None
    if len(data) > _HDR_MAX_INFLATED or inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("corrupt HDR histogram (truncated, or inflates past its size)")
    if len(data) < _HDR_PAYLOAD_HEADER.size:
        raise ValueError("corrupt HDR histogram (payload too short)")
    cookie, payload_len, offset, digits, lowest, highest, ratio = _HDR_PAYLOAD_HEADER.unpack(
        data[: _HDR_PAYLOAD_HEADER.size]
    )
    settings = (lowest, highest, digits)
    if cookie & ~0xF0 != _HDR_ENCODING_COOKIE or payload_len != len(data) - 40 or offset:
        raise ValueError("corrupt HDR histogram (bad payload header)")
    if settings != (HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS) or ratio != 1:
        raise ValueError(
            f"HDR histogram of range {lowest}..{highest} us at {digits} digits; memsweep "
            f"writes {HDR_LOWEST_US}..{HDR_HIGHEST_US} us at {HDR_DIGITS}"
        )
    try:
        histogram = decode(encoded)
        total = histogram.get_total_count()
    # What hdrh's C decoder raises on a bad varint stream (found by fuzzing its input).
    except (IndexError, OverflowError, ValueError, TypeError) as exc:
        raise ValueError(f"corrupt HDR histogram ({type(exc).__name__})") from None
    return int(total)
