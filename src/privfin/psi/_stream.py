"""Streaming and batching helpers shared by the PSI protocols (two-party, multi-party,
unbalanced, anonymous query): executor batches with blocks in flight, a background sender
that overlaps computing with transfer, checked receipt of streamed arrays, tag membership.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from privfin.errors import ProtocolError
from privfin.psi import ecdh
from privfin.runtime.executor import get_executor
from privfin.transport.base import Channel, Kind

TAG_DTYPE = np.dtype(f"S{ecdh.TAG_BYTES}")
MIN_CHUNK = 2048


def run_batched(fn: Any, items: np.ndarray, *args: Any) -> np.ndarray:
    parts = get_executor().map_chunks(fn, items, *args, min_chunk=MIN_CHUNK)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def pipeline(fn: Any, blocks: Iterable[np.ndarray], *args: Any, depth: int = 2) -> Iterable[np.ndarray]:
    """``run_batched(fn, block, *args)`` for each block, in order, keeping ``depth`` blocks in flight
    so the executor's workers never idle at a block boundary."""
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="psi-pipe") as tp:
        pending: list[Future[np.ndarray]] = []
        for b in blocks:
            pending.append(tp.submit(run_batched, fn, b, *args))
            if len(pending) >= depth:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()


def check_points(obj: Any, tag: str, frm: str) -> np.ndarray:
    if not isinstance(obj, np.ndarray) or obj.dtype != np.uint8 or obj.ndim != 2 or obj.shape[1] != ecdh.POINT_BYTES:
        raise ProtocolError(f"'{tag}' from '{frm}': expected an (n, {ecdh.POINT_BYTES}) uint8 array")
    return obj


def check_tags(obj: Any, tag: str, frm: str) -> np.ndarray:
    if not isinstance(obj, np.ndarray) or obj.dtype != TAG_DTYPE or obj.ndim != 1:
        raise ProtocolError(f"'{tag}' from '{frm}': expected a 1-d {TAG_DTYPE} array")
    return obj


def recv_stream(chan: Channel, frm: str, tag: str, total: int, check: Any) -> Iterable[np.ndarray]:
    got = 0
    while got < total:
        arr = check(chan.recv(frm, tag), tag, frm)
        if len(arr) == 0 or got + len(arr) > total:
            raise ProtocolError(f"'{tag}' from '{frm}': stream exceeds the announced {total} items")
        got += len(arr)
        yield arr


class Sender:
    """Sends from one background thread, in order, so computing the next block overlaps
    with transferring the previous one; :meth:`flush` waits and re-raises a send error."""

    def __init__(self, chan: Channel, max_pending: int = 4) -> None:
        self._chan = chan
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"psi-send-{chan.party}")
        self._pending: list[Future[None]] = []
        self._max = max_pending

    def send(self, to: str, tag: str, payload: Any, kind: Kind) -> None:
        self._pending = [f for f in self._pending if not f.done() or f.result() is not None]
        if len(self._pending) >= self._max:  # bound memory held by queued messages
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._chan.send, to, tag, payload, kind=kind))

    def flush(self) -> None:
        try:
            for f in self._pending:
                f.result()
        finally:
            self._pending = []

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def member(tags: np.ndarray, sorted_ref: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``tags`` occur in the sorted array ``sorted_ref``.

    For tags, the search runs on the first 8 bytes as big-endian ``uint64`` (same order as the
    bytes, ~10x faster than searching ``S16``) and every candidate is then compared in full;
    if two reference tags share their first 8 bytes it searches the full tags instead."""
    if len(sorted_ref) == 0 or len(tags) == 0:
        return np.zeros(len(tags), bool)
    if tags.dtype == TAG_DTYPE and sorted_ref.dtype == TAG_DTYPE:
        kref = np.ascontiguousarray(sorted_ref).view(">u8")[::2].astype(np.uint64)
        if len(kref) < 2 or bool((kref[1:] != kref[:-1]).all()):
            pos = np.searchsorted(kref, np.ascontiguousarray(tags).view(">u8")[::2].astype(np.uint64))
            pos[pos >= len(sorted_ref)] = 0
            return sorted_ref[pos] == tags
    pos = np.searchsorted(sorted_ref, tags)
    pos[pos >= len(sorted_ref)] = 0
    return sorted_ref[pos] == tags
