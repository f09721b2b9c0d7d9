"""Baseline for `privfin bench transport`: bare grpcio streaming over mutual TLS, no privfin logic.

Two processes on loopback: the client streams SIZE_MB of 4 MiB byte chunks to the server,
which only counts them. Prints one JSON object (median MB/s of REPEAT transfers).

    .venv/bin/python benchmarks/raw_grpc.py [SIZE_MB] [REPEAT]
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from privfin.runtime.launcher import free_ports
from privfin.transport import tls

CHUNK = 4 << 20
OPTS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


def serve(d: Path, port: int) -> None:
    def count(frames, context):
        return str(sum(len(f) for f in frames)).encode()

    server = grpc.server(ThreadPoolExecutor(4), options=OPTS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "raw.S", {"Send": grpc.stream_unary_rpc_method_handler(count)}),))
    creds = grpc.ssl_server_credentials([((d / "b.key").read_bytes(), (d / "b.crt").read_bytes())],
                                        root_certificates=(d / "ca.crt").read_bytes(), require_client_auth=True)
    server.add_secure_port(f"127.0.0.1:{port}", creds)
    server.start()
    server.wait_for_termination(timeout=600)


def main(size_mb: int, repeat: int) -> None:
    d = Path(tempfile.mkdtemp())
    tls.init_ca(d)
    tls.issue(d, "a")
    tls.issue(d, "b")
    (port,) = free_ports(1)
    child = subprocess.Popen([sys.executable, __file__, "serve", str(d), str(port)])
    try:
        creds = grpc.ssl_channel_credentials((d / "ca.crt").read_bytes(), (d / "a.key").read_bytes(),
                                             (d / "a.crt").read_bytes())
        ch = grpc.secure_channel(f"127.0.0.1:{port}", creds, options=OPTS + [("grpc.ssl_target_name_override", "b")])
        send = ch.stream_unary("/raw.S/Send")
        grpc.channel_ready_future(ch).result(timeout=30)
        payload = bytes(CHUNK)
        n = (size_mb << 20) // CHUNK
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            assert int(send(iter([payload] * n))) == n * CHUNK
            times.append(time.perf_counter() - t0)
        print(json.dumps({"bench": "raw-grpc-mtls", "size_mb": size_mb, "mb_per_s": round(size_mb / statistics.median(times), 1),
                          "seconds": [round(t, 3) for t in times]}))
    finally:
        child.kill()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
