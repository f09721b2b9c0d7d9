"""Wire encoding of message payloads: msgpack for structure, raw buffers for arrays.

A payload is any tree of ``None``, ``bool``, ``int`` (any size), ``float``, ``str``,
``bytes``, ``list``/``tuple`` (decoded as ``list``), ``dict`` (``str`` or ``int`` keys) and
numpy arrays of a numeric, boolean or fixed-width bytes/str dtype. Nothing else is
accepted: no object arrays, no arbitrary classes, no code on the wire.

``encode`` returns a small header plus the arrays' raw buffers (zero-copy views), so
transports can stream a large array in chunks without building one big bytes object;
``decode`` rebuilds the tree from the header and buffers of the announced sizes.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from privfin.errors import SerdeError

_EXT_ARRAY = 1
_EXT_BIGINT = 2
_ALLOWED_KINDS = frozenset("biufSU")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1

Payload = Any


def _int_to_bytes(v: int) -> bytes:
    return v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)


def encode(payload: Payload) -> tuple[bytes, list[memoryview]]:
    """Encode ``payload`` into ``(header, buffers)``; buffers are views, not copies."""
    buffers: list[memoryview] = []

    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind not in _ALLOWED_KINDS:
                raise SerdeError(f"array dtype {obj.dtype} cannot be sent (allowed kinds: {''.join(sorted(_ALLOWED_KINDS))})")
            arr = np.ascontiguousarray(obj)
            buffers.append(memoryview(arr).cast("B") if arr.size else memoryview(b""))
            meta = msgpack.packb([arr.dtype.str, list(arr.shape), len(buffers) - 1])
            return msgpack.ExtType(_EXT_ARRAY, meta)
        if isinstance(obj, int) and not isinstance(obj, bool):
            return msgpack.ExtType(_EXT_BIGINT, _int_to_bytes(obj))
        if isinstance(obj, np.generic):
            return obj.item()
        raise SerdeError(f"type {type(obj).__name__} cannot be sent over a channel")

    try:
        header = msgpack.packb(payload, default=default, use_bin_type=True, strict_types=False)
    except (TypeError, ValueError, OverflowError) as exc:  # msgpack's own refusals
        raise SerdeError(f"payload cannot be encoded: {exc}") from exc
    return header, buffers


def buffer_sizes(header: bytes) -> list[int]:
    """Byte size of each buffer the header refers to, in order (for preallocation)."""
    sizes: dict[int, int] = {}

    def hook(code: int, data: bytes) -> Any:
        if code == _EXT_ARRAY:
            dtype, shape, idx = msgpack.unpackb(data)
            sizes[idx] = int(np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64)))
        return None

    msgpack.unpackb(header, ext_hook=hook, raw=False, strict_map_key=False)
    return [sizes[i] for i in range(len(sizes))]


def decode(header: bytes, buffers: list[bytes | bytearray | memoryview]) -> Payload:
    """Rebuild the payload; arrays are views over ``buffers`` (writable if a buffer is)."""

    def hook(code: int, data: bytes) -> Any:
        if code == _EXT_BIGINT:
            return int.from_bytes(data, "little", signed=True)
        if code == _EXT_ARRAY:
            dtype_str, shape, idx = msgpack.unpackb(data)
            dtype = np.dtype(dtype_str)
            if dtype.kind not in _ALLOWED_KINDS:
                raise SerdeError(f"received array of forbidden dtype {dtype}")
            if not 0 <= idx < len(buffers):
                raise SerdeError("array refers to a missing buffer")
            buf = buffers[idx]
            expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
            if len(buf) != expected:
                raise SerdeError(f"array buffer has {len(buf)} bytes, header says {expected}")
            return np.frombuffer(buf, dtype=dtype).reshape(shape) if expected else np.empty(shape, dtype)
        raise SerdeError(f"unknown extension type {code}")

    try:
        return msgpack.unpackb(header, ext_hook=hook, raw=False, strict_map_key=False, use_list=True)
    except SerdeError:
        raise
    except Exception as exc:  # malformed bytes from a peer
        raise SerdeError(f"malformed payload: {exc}") from exc


def payload_nbytes(header: bytes, buffers: list[memoryview] | list[bytes]) -> int:
    """Total bytes a message occupies on the wire (header plus buffers)."""
    return len(header) + sum(len(b) for b in buffers)
