"""Canonical bytes as the entry table stores them: a Zstandard frame compressed against a dictionary
of what entries share (their keys, the vocabulary, the digits of hashes), about a quarter of the
size. The bytes a reader gets back, and everything hashed, signed or shown, stay the RFC 8785 ones.

A stored value says how it was stored by its first byte:
- `{`: the canonical bytes themselves (rows written before packing, or by hand);
- `\\x01`: a frame packed with dictionary 1 (`entries-1.zdict`; `bench/entry_dictionary.py` says how
  it was made). A dictionary never changes once rows use it: a better one gets the next number.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib.resources import files
from typing import Any

import zstandard
from sqlalchemy import Dialect, LargeBinary, TypeDecorator

RAW = ord("{")
DICTIONARY_1 = 1
LEVEL = 3
# Far beyond any entry (the API caps a body at 1 MiB): a frame claiming more is not one of ours.
MAX_CANONICAL_BYTES = 16 << 20


@cache
def dictionary(number: int) -> zstandard.ZstdCompressionDict:
    if number != DICTIONARY_1:
        raise KeyError(number)
    return zstandard.ZstdCompressionDict(files("service.ledger").joinpath("entries-1.zdict").read_bytes())


class _Codecs:
    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary(DICTIONARY_1),
                                                   write_checksum=False, write_dict_id=False)
        self.decompressor = zstandard.ZstdDecompressor(dict_data=dictionary(DICTIONARY_1))


_per_thread = threading.local()  # zstandard's (de)compressors are not safe to share between threads


def _codecs() -> _Codecs:
    codecs: _Codecs | None = getattr(_per_thread, "codecs", None)
    if codecs is None:
        codecs = _per_thread.codecs = _Codecs()
    return codecs


def pack(canonical: bytes) -> bytes:
    return bytes((DICTIONARY_1,)) + _codecs().compressor.compress(canonical)


def unpack(stored: bytes) -> bytes:
    """The canonical bytes of a stored value. A value that does not unpack comes back as stored, so
    that whatever hashes it (`seenby audit`, every verifier) reports it rather than a crash here."""
    if not stored or stored[0] != DICTIONARY_1:
        return stored
    frame = stored[1:]
    try:
        # pack() writes the size in the frame's header, and decompress() allocates what a header says
        # (max_output_size bounds only frames without a size): so a header is checked first.
        if not 0 <= zstandard.frame_content_size(frame) <= MAX_CANONICAL_BYTES:
            return stored
        return _codecs().decompressor.decompress(frame)
    except zstandard.ZstdError:
        return stored


class PackedCanonical(TypeDecorator[bytes]):
    """The entry table's `canonical` column: packed on the way in, unpacked on the way out."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        return None if value is None else pack(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else unpack(value)
