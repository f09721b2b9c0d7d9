"""A party process: its gRPC node, job store, and the jobs it runs.

Control operations (over the same mutual-TLS gRPC service):

* ``job.submit`` — from the party's own operator (its own certificate): parse and check
  the job, propose it to every other party, start it everywhere; returns the job id.
* ``job.propose`` / ``job.start`` — from the initiating peer: check this party's part of
  the job (its parties are known peers, its input exists), then run it.
* ``job.status`` — a job's record (steps, timings, metrics once succeeded) and live progress.

Each job runs in a thread: the implicit ``load`` step, then the job's steps, then a commit
barrier (every party reports to the initiator, which confirms to all), so a job counts as
succeeded at one party only if it succeeded at every party. If any step
fails — locally or because a peer was lost or aborted — the party aborts the job at every
peer, records the error, and deletes the job's partial outputs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import privfin.pipeline  # noqa: F401 - registers the built-in steps
from privfin.config import JobSpec, PartyConfig, StepSpec
from privfin.errors import ConfigError, JobError, PeerLostError, PrivfinError, RemoteError
from privfin.runtime.steps import STEPS, Progress, StepContext
from privfin.runtime.store import Artifact, JobStore
from privfin.transport.base import Channel, PeerAborted
from privfin.transport.grpc import GrpcNode

log = logging.getLogger(__name__)


def new_job_id() -> str:
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def public_reason(exc: BaseException, step: str, party: str) -> str:
    """What peers are told when a job fails here: the lost peer, or only the error type."""
    if isinstance(exc, PeerLostError):
        return str(exc)
    return f"step '{step}' failed at '{party}' ({type(exc).__name__})"


@dataclass
class JobRun:
    spec: JobSpec
    initiator: str
    progress: Progress = field(default_factory=Progress)
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    error: str = ""
    thread: threading.Thread | None = None


class Party:
    """One party: serves peers and its operator, runs jobs."""

    def __init__(self, cfg: PartyConfig) -> None:
        self.cfg = cfg
        self.store = JobStore(cfg.job_store)
        interrupted = self.store.fail_interrupted()
        if interrupted:
            log.warning("%d job(s) left running by a previous process were marked failed", interrupted)
        self.node = GrpcNode(cfg.name, cfg.listen, cfg.peers, cfg.tls)
        self.runs: dict[str, JobRun] = {}
        self._lock = threading.Lock()
        self.finished = threading.Semaphore(0)
        for op, fn in {"job.submit": self._op_submit, "job.propose": self._op_propose,
                       "job.start": self._op_start, "job.status": self._op_status,
                       "job.cancel": self._op_cancel}.items():
            self.node.register(op, fn)

    # -- checks --------------------------------------------------------------------------------
    def _check_spec(self, text: str, file: str) -> JobSpec:
        spec = JobSpec.parse(text, file, known_steps=set(STEPS) - {"load"})
        spec.check_parties_known(self.cfg.name, self.cfg.peers, self.cfg.file)
        ps = spec.parties[self.cfg.name]
        path = Path(ps.input) if Path(ps.input).is_absolute() else self.cfg.data_dir / ps.input
        if not path.is_file():
            raise ConfigError(f"input file not found at '{self.cfg.name}': {path}",
                              key=f"parties.{self.cfg.name}.input", file=file)
        return spec

    def _accept(self, job_id: str, spec: JobSpec, initiator: str) -> None:
        with self._lock:
            if job_id in self.runs:
                raise JobError(f"job {job_id} already exists here")
            self.runs[job_id] = JobRun(spec, initiator)
        self.store.create_job(job_id, spec.name, spec.parties[self.cfg.name].role, initiator, list(spec.parties),
                              spec.text, ["load"] + [s.name for s in spec.steps])

    # -- control operations ------------------------------------------------------------------
    def _op_submit(self, sender: str, args: dict[str, Any]) -> dict[str, Any]:
        if sender != self.cfg.name:
            raise JobError("only this party's operator may submit jobs here")
        spec = self._check_spec(str(args["spec"]), str(args.get("file", "job.toml")))
        job_id = new_job_id()
        others = [p for p in spec.parties if p != self.cfg.name]
        asked: list[str] = []
        try:
            for peer in others:
                asked.append(peer)
                self.node.call(peer, "job.propose", {"job": job_id, "spec": spec.text, "file": spec.file})
        except PrivfinError as exc:
            self._cancel_at(asked[:-1], job_id)
            why = exc.detail if isinstance(exc, RemoteError) else str(exc)
            raise JobError(f"party '{asked[-1]}' refused the job: {why}") from exc
        self._accept(job_id, spec, self.cfg.name)
        try:
            for peer in others:
                self.node.call(peer, "job.start", {"job": job_id})
        except PrivfinError as exc:
            self._cancel_at(others, job_id)
            self.store.job_failed(job_id, f"could not start at every party: {exc}")
            raise JobError(f"job {job_id} could not start at every party: {exc}") from exc
        self._start(job_id)
        return {"job": job_id}

    def _cancel_at(self, peers: list[str], job_id: str) -> None:
        for peer in peers:
            with contextlib.suppress(PrivfinError):
                self.node.call(peer, "job.cancel", {"job": job_id}, timeout=3.0, grace=0.0)

    def _op_cancel(self, sender: str, args: dict[str, Any]) -> dict[str, Any]:
        job_id = str(args["job"])
        run = self.runs.get(job_id)
        if run is None or run.initiator != sender:
            raise JobError(f"no job {job_id} proposed by '{sender}'")
        if run.thread is None:
            self.store.job_failed(job_id, f"cancelled by the initiator '{sender}'")
            del self.runs[job_id]
        else:
            self.node.mailbox.fail(job_id, PeerAborted(sender, "cancelled by the initiator"))
        return {"ok": True}

    def _op_propose(self, sender: str, args: dict[str, Any]) -> dict[str, Any]:
        spec = self._check_spec(str(args["spec"]), str(args.get("file", "job.toml")))
        if sender not in spec.parties:
            raise JobError(f"'{sender}' proposed a job it takes no part in")
        self._accept(str(args["job"]), spec, sender)
        return {"ok": True}

    def _op_start(self, sender: str, args: dict[str, Any]) -> dict[str, Any]:
        job_id = str(args["job"])
        run = self.runs.get(job_id)
        if run is None or run.initiator != sender:
            raise JobError(f"no job {job_id} proposed by '{sender}'")
        self._start(job_id)
        return {"ok": True}

    def _op_status(self, sender: str, args: dict[str, Any]) -> dict[str, Any]:
        if sender != self.cfg.name:
            raise JobError("job status is for this party's operator only")
        job = self.store.job(str(args["job"]))
        if job is None:
            raise JobError(f"no job {args['job']!r} in {self.store.path}")
        job = job_record(job)
        run = self.runs.get(job["id"])
        job["progress"] = run.progress.snapshot() if run else {}
        return job

    # -- running ------------------------------------------------------------------------------
    def _start(self, job_id: str) -> None:
        run = self.runs[job_id]
        run.thread = threading.Thread(target=self._run, args=(job_id,), name=f"job-{job_id}", daemon=True)
        run.thread.start()

    def _run(self, job_id: str) -> None:
        run = self.runs[job_id]
        spec, me = run.spec, self.cfg.name
        chan = self.node.channel(job_id, [p for p in spec.parties if p != me],
                                 timeout=spec.timeout_s or self.cfg.timeout_s, ledger=self.store.record)
        jobs_dir = self.cfg.data_dir / "jobs"
        staging, final = jobs_dir / f".{job_id}.partial", jobs_dir / job_id
        ctx = StepContext(me, job_id, spec, chan, self.cfg.data_dir, staging, progress_state=run.progress)
        steps = [StepSpec("load")] + list(spec.steps)
        idx, current = 0, "load"
        self.store.job_started(job_id)
        try:
            for idx, st in enumerate(steps):
                current = ctx.step_name = run.progress.step = st.name
                ctx.progress(0, 0)
                self.store.step_started(job_id, idx)
                t0 = time.perf_counter()
                with chan.stage(st.name):
                    STEPS[st.name](ctx, st.params)
                ctx.metrics[(st.name, "wall_s")] = round(time.perf_counter() - t0, 3)
                self.store.step_finished(job_id, idx)
            current = "commit"
            self._commit(chan, run.initiator)
            artifacts = ctx.artifacts
            if staging.exists():
                staging.rename(final)
                artifacts = [Artifact(a.step, a.name, a.kind, str(final / Path(a.path).name), a.bytes)
                             for a in artifacts]
            ctx.metrics[("job", "bytes_sent")] = chan.bytes_sent
            ctx.metrics[("job", "bytes_received")] = chan.bytes_received
            self.store.job_succeeded(job_id, ctx.metrics, artifacts)
            run.ok = True
        except BaseException as exc:  # noqa: BLE001 - every failure ends the job cleanly
            run.error = f"{type(exc).__name__}: {exc}"
            log.error("job %s failed in step %s: %s", job_id, current, run.error)
            chan.abort(public_reason(exc, current, me))
            self.store.step_finished(job_id, idx, error=run.error)
            self.store.job_failed(job_id, f"step '{current}': {run.error}")
            shutil.rmtree(staging, ignore_errors=True)
        finally:
            chan.close()
            run.done.set()
            self.finished.release()

    @staticmethod
    def _commit(chan: Channel, initiator: str) -> None:
        """Barrier: the job succeeds at a party only once every party has finished every step."""
        with chan.stage("commit"):
            if chan.party == initiator:
                chan.gather("job/finished")
                chan.broadcast("job/commit", True)
            else:
                chan.send(initiator, "job/finished", True)
                chan.recv(initiator, "job/commit")

    # -- serving ------------------------------------------------------------------------------
    def serve(self, exit_after: int | None = None, parent_pid: int | None = None) -> int:
        """Serve until signalled, or until ``exit_after`` jobs ended; exit code 1 if any failed."""
        self.node.start()
        log.info("party %s listening on %s", self.cfg.name, self.cfg.listen)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        ended = 0
        try:
            while not stop.is_set():
                if self.finished.acquire(timeout=0.5):
                    ended += 1
                    if exit_after is not None and ended >= exit_after:
                        time.sleep(1.0)  # let the operator's last status poll see the outcome
                        break
                if parent_pid is not None and os.getppid() != parent_pid:
                    log.error("launcher (pid %d) is gone; stopping", parent_pid)
                    stop.set()
        finally:
            for job_id, run in list(self.runs.items()):
                if not run.done.is_set():
                    run.error = run.error or "party stopped"
            self.node.stop(grace=1.0)
            self.store.fail_interrupted()
            self.store.close()
        failed = [r for r in self.runs.values() if r.done.is_set() and not r.ok]
        return 1 if failed or stop.is_set() and exit_after is not None else 0


def job_record(job: dict[str, Any]) -> dict[str, Any]:
    """A job from the store as plain data (what ``job.status`` returns)."""
    job = dict(job)
    job["metrics"] = [[s, k, v] for (s, k), v in job["metrics"].items()]
    job["artifacts"] = [a.__dict__ for a in job["artifacts"]]
    return job


def control_node(cfg: PartyConfig) -> GrpcNode:
    """A client-only node that talks to this party's own server with its own certificate."""
    return GrpcNode(cfg.name, "", {cfg.name: cfg.listen}, cfg.tls)
