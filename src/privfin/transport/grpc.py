"""gRPC transport with mutual TLS.

Each party runs one :class:`GrpcNode`: a gRPC server that receives messages into the
party's :class:`~privfin.transport.base.Mailbox`, plus one client connection per peer.
Both directions are authenticated: the server requires a client certificate signed by
the party's CA whose common name is a configured peer (and the envelope's sender must be
that name); the client checks that the server's certificate names the peer it meant to
reach. A certificate from an unknown CA, or for another name, is refused.

Wire format (no protobuf messages and no Python object serialization; gRPC carries raw bytes):

* ``privfin.Party/Send`` (client streaming): the first frame is a msgpack map
  ``{env, header, sizes}`` — the routing envelope, the payload header of
  :mod:`privfin.transport.serde` and the byte size of each array buffer; the following
  frames are the buffers' bytes, in order, in chunks of at most ``chunk_size``. The
  receiver preallocates each buffer and copies chunks in, so memory stays bounded by
  the message itself plus one chunk, whatever its size. The reply says whether the
  message was new or a duplicate (same job, sender and sequence number: dropped).
* ``privfin.Party/Call`` (unary): msgpack ``{op, args}`` -> msgpack reply, for control
  operations (ping, abort, and those the party runtime registers, e.g. job proposals).
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import msgpack
import numpy as np

from privfin.errors import AuthError, PeerLostError, PrivfinError, ProtocolError, RemoteError, TransportError
from privfin.transport import serde
from privfin.transport.base import Channel, Envelope, LedgerEntry, Mailbox, Message, PeerAborted
from privfin.transport.tls import TLSFiles

log = logging.getLogger(__name__)

SERVICE = "privfin.Party"
DEFAULT_CHUNK = 4 << 20
_MAX_FRAME = 64 << 20
_HUGE_MIN = 32 << 20
_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_FRAME),
    ("grpc.max_send_message_length", _MAX_FRAME),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
_SERVER_OPTIONS = _OPTIONS + [("grpc.http2.min_ping_interval_without_data_ms", 5_000)]

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]


def _receive_buffer(size: int) -> np.ndarray:
    """A writable buffer for an incoming array; large ones pre-faulted in the background.

    First-touch page faults dominate receiving a large array on this class of VM (about
    2.5 s per GiB with 4 KiB pages, 0.7 s with 2 MiB pages, against 0.05 s to copy into
    memory already mapped). Big buffers are therefore mapped directly, advised to use huge
    pages, and populated by a background thread (``MADV_POPULATE_WRITE``, Linux >= 5.14)
    running ahead of the chunks as they arrive. Populating never changes a page already
    present, so the receiving loop may overtake it safely.
    """
    if size < _HUGE_MIN or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.empty(size, dtype=np.uint8)
    mm = mmap.mmap(-1, size)
    mm.madvise(mmap.MADV_HUGEPAGE)
    buf = np.frombuffer(mm, dtype=np.uint8)
    if _madvise is not None:
        threading.Thread(target=_populate, args=(buf.ctypes.data, size), daemon=True,
                         name="privfin-prefault").start()
    return buf


def _populate(addr: int, size: int, step: int = 32 << 20) -> None:
    for off in range(0, size, step):
        if _madvise(addr + off, min(step, size - off), _MADV_POPULATE_WRITE) != 0:
            return  # not supported here: the receiving loop faults pages in itself


def _libc_madvise() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_MADV_POPULATE_WRITE = 23  # linux/mman.h
_madvise = _libc_madvise() if sys.platform == "linux" else None


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


class GrpcNode:
    """One party's endpoint: server, peer clients and the mailbox they share."""

    def __init__(self, name: str, listen: str, peers: dict[str, str], tls: TLSFiles, *,
                 chunk_size: int = DEFAULT_CHUNK, connect_grace: float = 5.0, max_workers: int = 16) -> None:
        self.name = name
        self.listen = listen
        self.peers = dict(peers)
        self.mailbox = Mailbox()
        self.chunk_size = chunk_size
        self.connect_grace = connect_grace
        self._ca, self._cert, self._key = tls.read()
        self._handlers: dict[str, Handler] = {"ping": lambda sender, args: {"name": self.name},
                                              "abort": self._on_abort}
        self._server: grpc.Server | None = None
        self._max_workers = max_workers
        self._channels: dict[str, grpc.Channel] = {}
        self._send_stubs: dict[str, Any] = {}
        self._call_stubs: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.port: int | None = None

    # -- lifecycle -------------------------------------------------------------------
    def register(self, op: str, handler: Handler) -> None:
        """Handle control operation ``op``: ``handler(sender, args) -> reply``."""
        self._handlers[op] = handler

    def start(self) -> GrpcNode:
        server = grpc.server(ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix=f"{self.name}-rpc"),
                             options=_SERVER_OPTIONS)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            "Send": grpc.stream_unary_rpc_method_handler(self._on_send),
            "Call": grpc.unary_unary_rpc_method_handler(self._on_call),
        }),))
        creds = grpc.ssl_server_credentials([(self._key, self._cert)], root_certificates=self._ca,
                                            require_client_auth=True)
        try:
            self.port = server.add_secure_port(self.listen, creds)
        except RuntimeError as exc:
            raise TransportError(f"cannot listen on {self.listen}: {exc}") from exc
        if not self.port:
            raise TransportError(f"cannot listen on {self.listen} (address in use?)")
        server.start()
        self._server = server
        return self

    def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace).wait(grace + 1)
            self._server = None
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()
            self._send_stubs.clear()
            self._call_stubs.clear()

    def __enter__(self) -> GrpcNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- server side -------------------------------------------------------------------
    def _authenticate(self, context: grpc.ServicerContext, allow_self: bool = False) -> str:
        names = context.auth_context().get("x509_common_name") or []
        who = names[0].decode() if names else ""
        if who not in self.peers and not (allow_self and who == self.name):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"certificate name {who!r} is not a peer of {self.name!r}")
        return who

    def _on_send(self, frames: Any, context: grpc.ServicerContext) -> bytes:
        sender = self._authenticate(context)
        it = iter(frames)
        try:
            meta = _unpack(next(it))
            env = Envelope.from_wire(meta["env"])
            header, sizes = bytes(meta["header"]), [int(s) for s in meta["sizes"]]
        except (StopIteration, KeyError, TypeError, ValueError, ProtocolError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed message: {exc}")
        if env.sender != sender or env.receiver != self.name:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"certificate of {sender!r} cannot send as {env.sender!r} to {env.receiver!r}")
        if sizes != serde.buffer_sizes(header):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "buffer sizes do not match the payload header")
        buffers = [_receive_buffer(size) for size in sizes]
        for buf in buffers:
            pos = 0
            while pos < len(buf):
                chunk = next(it, None)
                if chunk is None or pos + len(chunk) > len(buf):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "message body does not match its announced size")
                buf[pos:pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                pos += len(chunk)
        if next(it, None) is not None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "message longer than announced")
        fresh = self.mailbox.put(Message(env, header, buffers))
        return _pack({"ok": True, "dup": not fresh})

    def _on_call(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        # the party's own certificate may run control operations (the local `privfin` CLI)
        sender = self._authenticate(context, allow_self=True)
        try:
            req = _unpack(request)
            op, args = str(req["op"]), dict(req.get("args") or {})
        except (KeyError, TypeError, ValueError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed call: {exc}")
        handler = self._handlers.get(op)
        if handler is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"unknown operation {op!r}")
        try:
            return _pack(handler(sender, args))
        except Exception as exc:  # reported to the caller as a one-line error
            log.warning("control operation %s from %s failed: %s", op, sender, exc)
            detail = str(exc) if isinstance(exc, PrivfinError) else f"{type(exc).__name__}: {exc}"
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, detail)

    def _on_abort(self, sender: str, args: dict[str, Any]) -> dict[str, Any]:
        self.mailbox.fail(str(args["job"]), PeerAborted(sender, str(args.get("reason", "job failed"))))
        return {"ok": True}

    # -- client side -------------------------------------------------------------------
    def _stub(self, peer: str, kind: str) -> Any:
        with self._lock:
            if peer not in self._channels:
                if peer not in self.peers:
                    raise TransportError(f"'{peer}' is not a configured peer of '{self.name}'")
                creds = grpc.ssl_channel_credentials(root_certificates=self._ca, private_key=self._key,
                                                     certificate_chain=self._cert)
                ch = grpc.secure_channel(self.peers[peer], creds,
                                         options=_OPTIONS + [("grpc.ssl_target_name_override", peer)])
                self._channels[peer] = ch
                self._send_stubs[peer] = ch.stream_unary(f"/{SERVICE}/Send")
                self._call_stubs[peer] = ch.unary_unary(f"/{SERVICE}/Call")
            return (self._send_stubs if kind == "send" else self._call_stubs)[peer]

    def _frames(self, msg: Message) -> Any:
        yield _pack({"env": msg.envelope.to_wire(), "header": msg.header, "sizes": [len(b) for b in msg.buffers]})
        step = self.chunk_size
        for buf in msg.buffers:
            for i in range(0, len(buf), step):
                yield bytes(buf[i:i + step])

    def _rpc(self, peer: str, kind: str, request: Any, timeout: float, grace: float | None = None) -> bytes:
        """Run one RPC, retrying while the peer is unreachable for up to ``grace`` s."""
        stub = self._stub(peer, kind)
        grace = self.connect_grace if grace is None else grace
        start = time.monotonic()
        delay = 0.05
        while True:
            try:
                return stub(request() if callable(request) else request, timeout=timeout)
            except grpc.RpcError as exc:
                code, detail = exc.code(), exc.details() or ""
                if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                    raise AuthError(f"peer '{peer}' refused us: {detail}") from exc
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    raise RemoteError(peer, detail) from exc
                if code == grpc.StatusCode.UNAVAILABLE and time.monotonic() - start + delay < grace:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise PeerLostError(peer, f"no answer within {timeout:g} s") from exc
                raise PeerLostError(peer, f"{code.name.lower()} at {self.peers[peer]}: {detail}") from exc

    def send(self, msg: Message, timeout: float) -> bool:
        """Deliver ``msg``; returns False if the peer had it already (a resend)."""
        reply = _unpack(self._rpc(msg.envelope.receiver, "send", lambda: self._frames(msg), timeout))
        return not reply.get("dup", False)

    def call(self, peer: str, op: str, args: dict[str, Any] | None = None, timeout: float = 10.0,
             grace: float | None = None) -> dict[str, Any]:
        """Run control operation ``op`` at ``peer``."""
        return _unpack(self._rpc(peer, "call", _pack({"op": op, "args": args or {}}), timeout, grace))

    def ping(self, peer: str, timeout: float = 3.0, grace: float = 0.0) -> None:
        """Raise :class:`PeerLostError` / :class:`AuthError` unless ``peer`` answers as itself."""
        reply = self.call(peer, "ping", timeout=timeout, grace=grace)
        if reply.get("name") != peer:
            raise AuthError(f"peer at {self.peers[peer]} answered as {reply.get('name')!r}, expected {peer!r}")

    def wait_for_peers(self, peers: list[str] | None = None, timeout: float = 30.0) -> None:
        """Block until every peer answers a ping, or raise naming the first that does not."""
        deadline = time.monotonic() + timeout
        for peer in peers or list(self.peers):
            while True:
                try:
                    self.ping(peer, timeout=max(0.5, min(3.0, deadline - time.monotonic())))
                    break
                except PeerLostError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def channel(self, job_id: str, peers: list[str] | None = None, *, timeout: float = 600.0,
                ledger: Callable[[LedgerEntry], None] | None = None, probe_interval: float = 2.0) -> GrpcChannel:
        """A :class:`Channel` for one job between this party and ``peers`` (all by default)."""
        return GrpcChannel(self, job_id, list(self.peers) if peers is None else peers, timeout=timeout,
                           ledger=ledger, probe_interval=probe_interval)


class GrpcChannel(Channel):
    """A job's channel over a :class:`GrpcNode`; probes a silent peer so a crash is noticed."""

    def __init__(self, node: GrpcNode, job_id: str, peers: list[str], **kw: Any) -> None:
        super().__init__(node.name, peers, job_id, node.mailbox, **kw)
        self._node = node
        self._failed_probes: dict[str, int] = {}

    def _deliver(self, msg: Message) -> None:
        self._node.send(msg, self.timeout)

    def _probe(self, peer: str) -> None:
        try:
            self._node.ping(peer, timeout=min(3.0, self.timeout))
            self._failed_probes[peer] = 0
        except PeerLostError as exc:
            self._failed_probes[peer] = self._failed_probes.get(peer, 0) + 1
            if self._failed_probes[peer] >= 2:
                raise PeerLostError(peer, f"stopped answering during job {self.job_id} ({exc})") from exc

    def _abort_peer(self, peer: str, reason: str) -> None:
        self._node.call(peer, "abort", {"job": self.job_id, "reason": reason}, timeout=3.0, grace=0.0)
