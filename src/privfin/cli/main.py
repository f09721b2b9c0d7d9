"""The ``privfin`` command line (typer + rich). Thin: every command calls library code."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.live import Live

from privfin.cli import render
from privfin.config import JobSpec, PartyConfig
from privfin.errors import ConfigError, PrivfinError

app = typer.Typer(help="privfin: privacy-preserving computation for inclusive finance.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
certs_app = typer.Typer(help="Development CA and party certificates for mutual TLS.", no_args_is_help=True)
party_app = typer.Typer(help="Run a party process.", no_args_is_help=True)
jobs_app = typer.Typer(help="Read a party's job store.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks; each prints one JSON object with --json.", no_args_is_help=True)
data_app = typer.Typer(help="Generated data.", no_args_is_help=True)
for sub, name in ((certs_app, "certs"), (party_app, "party"), (jobs_app, "jobs"), (bench_app, "bench"),
                  (data_app, "data")):
    app.add_typer(sub, name=name)
scorecard_app = typer.Typer(help="This party's scorecard from a job: JSON export, readable table.", no_args_is_help=True)
app.add_typer(scorecard_app, name="scorecard")

console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The party's party.toml.")]


def friendly(fn: F) -> F:
    """Turn privfin errors into a one-line message and exit code 2 (configuration) or 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except PrivfinError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


# -- certs --------------------------------------------------------------------------------------
@certs_app.command("init")
@friendly
def certs_init(dir: Annotated[Path, typer.Option(help="Where to write ca.crt and ca.key.")] = Path("certs"),
               force: Annotated[bool, typer.Option(help="Replace an existing CA.")] = False) -> None:
    """Create a development certificate authority."""
    from privfin.transport.tls import init_ca

    path = init_ca(dir, overwrite=force)
    console.print(f"CA certificate: {path}  (keep {dir / 'ca.key'} private)")


@certs_app.command("issue")
@friendly
def certs_issue(name: Annotated[str, typer.Argument(help="Party name (certificate common name).")],
                dir: Annotated[Path, typer.Option(help="Folder holding the CA; the certificate goes here too.")] = Path(
                    "certs"),
                host: Annotated[list[str], typer.Option(help="Extra host names / IPs to include.")] = []) -> None:
    """Issue a party certificate signed by the development CA."""
    from privfin.transport.tls import issue

    files = issue(dir, name, tuple(["localhost", "127.0.0.1", *host]))
    console.print(f"certificate: {files.cert}\nkey:         {files.key}")


# -- party -----------------------------------------------------------------------------------------
@party_app.command("serve")
@friendly
def party_serve(config: ConfigOpt,
                exit_after: Annotated[int | None, typer.Option(help="Exit after this many jobs ended.")] = None,
                parent_pid: Annotated[int | None, typer.Option(help="Exit if this launcher process dies.")] = None,
                log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO") -> None:
    """Run one party: serve peers over mutual TLS and run the jobs it takes part in."""
    from privfin.runtime.party import Party

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    cfg = PartyConfig.load(config)
    code = Party(cfg).serve(exit_after=exit_after, parent_pid=parent_pid)
    raise typer.Exit(code)


# -- run and jobs ------------------------------------------------------------------------------------
def _follow(cfg: PartyConfig, job_id: str) -> dict[str, Any]:
    from privfin.runtime.launcher import wait_job

    with Live(console=console, refresh_per_second=4, transient=False) as live:
        return wait_job(cfg, job_id, on_status=lambda s: live.update(render.steps_table(s)))


def _finish(cfg: PartyConfig, status: dict[str, Any]) -> None:
    if status["metrics"]:
        console.print(render.metrics_table(status["metrics"]))
    for a in status.get("artifacts", []):
        console.print(f"artifact [bold]{a['name']}[/]: {a['path']}")
    if status["status"] != "succeeded":
        err.print(f"[red]job {status['id']} failed:[/] {status['error']}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command("run")
@friendly
def run(job: Annotated[Path, typer.Argument(help="The job spec (job.toml).")], config: ConfigOpt,
        wait: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = True) -> None:
    """Submit a job from this party (the initiator); every party runs its own role's steps."""
    from privfin.runtime.launcher import submit

    cfg = PartyConfig.load(config)
    JobSpec.load(job)  # fail fast on a bad spec, before contacting anyone
    job_id = submit(cfg, job)
    console.print(f"job [bold]{job_id}[/] submitted at '{cfg.name}'")
    if wait:
        _finish(cfg, _follow(cfg, job_id))


@jobs_app.command("list")
@friendly
def jobs_list(config: ConfigOpt, limit: int = 50) -> None:
    """The party's recent jobs."""
    from privfin.runtime.store import JobStore

    console.print(render.jobs_table(JobStore(PartyConfig.load(config).job_store).jobs(limit)))


@jobs_app.command("show")
@friendly
def jobs_show(job_id: Annotated[str, typer.Argument(help="Job id (a unique prefix is enough).")], config: ConfigOpt,
              ledger: Annotated[bool, typer.Option(help="List every received message.")] = False) -> None:
    """Steps, timings, metrics, artifacts and the disclosure ledger of one job."""
    from privfin.runtime.store import JobStore

    store = JobStore(PartyConfig.load(config).job_store)
    job = store.job(job_id)
    if job is None:
        raise ConfigError(f"no job {job_id!r} (or the prefix is ambiguous)", file=str(store.path))
    console.print(render.steps_table(job))
    if job["error"]:
        console.print(f"[red]error:[/] {job['error']}", highlight=False)
    if job["metrics"]:
        console.print(render.metrics_table(job["metrics"]))
    for a in job["artifacts"]:
        console.print(f"artifact [bold]{a.name}[/] ({a.kind}, {a.bytes:,} bytes): {a.path}")
    console.print(render.ledger_table(store.ledger_summary(job["id"])))
    if ledger:
        for e in store.ledger(job["id"]):
            console.print(f"{render._when(e.received_at)}  {e.step:12} {e.sender:10} {e.tag:24} {e.kind:10} "
                          f"{e.nbytes:>12,}")


@jobs_app.command("report")
@friendly
def jobs_report(job_id: Annotated[str, typer.Argument(help="Job id (a unique prefix is enough).")], config: ConfigOpt,
                out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file to write (default: "
                                                         "reports/JOB.html next to the job store).")] = None) -> None:
    """Write this party's self-contained HTML report of one job and print its path."""
    from privfin.reports import write_job_report
    from privfin.runtime.store import JobStore

    cfg = PartyConfig.load(config)
    store = JobStore(cfg.job_store)
    job = store.job(job_id)
    if job is None:
        raise ConfigError(f"no job {job_id!r} (or the prefix is ambiguous)", file=str(store.path))
    console.print(f"report: {write_job_report(store, job['id'], cfg.name, out=out)}")


def _job_scorecard(job_id: str, config: Path) -> Any:
    from privfin.models.scorecard import scorecard_from_job
    from privfin.runtime.store import JobStore

    store = JobStore(PartyConfig.load(config).job_store)
    job = store.job(job_id)
    if job is None:
        raise ConfigError(f"no job {job_id!r} (or the prefix is ambiguous)", file=str(store.path))
    return scorecard_from_job(job)


@scorecard_app.command("export")
@friendly
def scorecard_export(job_id: Annotated[str, typer.Argument(help="Job id (a unique prefix is enough).")],
                     config: ConfigOpt,
                     out: Annotated[Path, typer.Option("--out", "-o", help="JSON file to write.")]) -> None:
    """Write this party's own points table (and, at the bank, the base points) as JSON."""
    card = _job_scorecard(job_id, config)
    out.write_text(card.to_json() + "\n", encoding="utf-8")
    console.print(f"scorecard of '{card.party}' ({len(card.features)} features) written to {out}")


@scorecard_app.command("show")
@friendly
def scorecard_show(job_id: Annotated[str, typer.Argument(help="Job id (a unique prefix is enough).")],
                   config: ConfigOpt) -> None:
    """Print this party's own points table."""
    console.print(_job_scorecard(job_id, config).to_rich())


@jobs_app.command("selection")
@friendly
def jobs_selection(job_id: Annotated[str, typer.Argument(help="Job id (a unique prefix is enough).")],
                   config: ConfigOpt,
                   csv: Annotated[Path | None, typer.Option(help="Also write the table as CSV here.")] = None,
                   html: Annotated[Path | None, typer.Option(help="Also write the <table> fragment here.")] = None
                   ) -> None:
    """Print the feature-selection report of a job with a screen step (at the active party)."""
    from privfin.features.report import SelectionReport
    from privfin.runtime.store import JobStore

    store = JobStore(PartyConfig.load(config).job_store)
    job = store.job(job_id)
    if job is None:
        raise ConfigError(f"no job {job_id!r} (or the prefix is ambiguous)", file=str(store.path))
    arts = [a for a in job["artifacts"] if a.name == "selection"]
    if not arts:
        raise ConfigError(f"job {job['id']} has no selection report at this party (a screen step stores it at "
                          "the active party)", file=str(store.path))
    rep = SelectionReport.read(arts[-1].path)
    console.print(rep.rich_table())
    if csv is not None:
        console.print(f"csv: {rep.to_csv(csv)}")
    if html is not None:
        html.write_text(rep.to_html() + "\n", encoding="utf-8")
        console.print(f"html: {html}")


@jobs_app.command("rerun")
@friendly
def jobs_rerun(job_id: Annotated[str, typer.Argument(help="The job to run again (as a new job).")],
               config: ConfigOpt) -> None:
    """Run a stored job spec again, as a new job, from this party."""
    import tempfile

    from privfin.runtime.launcher import submit
    from privfin.runtime.store import JobStore

    cfg = PartyConfig.load(config)
    job = JobStore(cfg.job_store).job(job_id)
    if job is None:
        raise ConfigError(f"no job {job_id!r}", file=str(cfg.job_store))
    if job["initiator"] != cfg.name:
        raise ConfigError(f"job {job['id']} was initiated by '{job['initiator']}'; rerun it there", file=str(config))
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(job["spec"])
    new_id = submit(cfg, Path(f.name))
    console.print(f"job [bold]{new_id}[/] submitted (rerun of {job['id']})")
    _finish(cfg, _follow(cfg, new_id))


# -- demo -----------------------------------------------------------------------------------------
demo_app = typer.Typer()
app.add_typer(demo_app, name="demo")


@demo_app.callback(invoke_without_command=True)
@friendly
def demo(ctx: typer.Context,
         data_dir: Annotated[Path | None, typer.Option(help="Run on the FATE-style vertical split in this folder "
                                                              "(default_credit_hetero_{guest,host}.csv), read in place.")] = None,
         rows: Annotated[int, typer.Option(help="Rows of the bank's generated table.")] = 20000,
         seed: Annotated[int, typer.Option(help="Seed of the data generator.")] = 0,
         workdir: Annotated[Path | None, typer.Option(help="Where certificates, configs and job stores go "
                                                           "(default: a new temp folder).")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print only the summary as one JSON object.")] = False,
         ) -> None:
    """Run the risk-scorecard pipeline: every party its own process on loopback TLS.

    `privfin demo marketing` runs the precision-marketing pipeline instead.
    """
    if ctx.invoked_subcommand:
        return
    from privfin.runtime.store import JobStore
    from privfin.scenarios.demo import run_demo, summary

    if as_json:
        res = run_demo(workdir=workdir, data_dir=data_dir, rows=rows, seed=seed)
    else:
        source = f"real data in {data_dir}" if data_dir else f"generated data ({rows:,} bank rows, seed {seed})"
        console.print(f"[bold]privfin demo[/]: bank (active) + gov (passive), {source}")
        with Live(console=console, refresh_per_second=4) as live:
            res = run_demo(workdir=workdir, data_dir=data_dir, rows=rows, seed=seed,
                           on_status=lambda s: live.update(render.steps_table(s)))
    status, out = res.status, summary(res)
    if as_json:
        print(json.dumps(out))
    else:
        console.print(render.metrics_table(status["metrics"], title="summary at the bank"))
        console.print(render.ledger_table(JobStore(res.bank_store).ledger_summary(res.job_id),
                                          title="what the bank received"))
        from privfin.evaluation.metrics import BANK_ONLY, compare

        for name, base_name in BANK_ONLY.items():
            fed, base = out["federated"][name], out[base_name]
            if fed and base:
                c = compare(base, fed)
                console.print(f"[bold]holdout {name:5}[/] AUC bank-only {base['auc']:.4f} -> federated {fed['auc']:.4f} "
                              f"({c['auc_change_pct']:+.1f}%); KS {base['ks']:.4f} -> "
                              f"{fed['ks']:.4f} ({c['ks_change_pct']:+.1f}%)")
        console.print(f"workdir: {res.workdir}  (party configs, logs, job stores; "
                      f"`privfin jobs show {res.job_id} -c {res.workdir / 'bank' / 'party.toml'}`)")
        if res.report is not None:
            console.print(f"report: {res.report}")
    bad = {p: c for p, c in res.exit_codes.items() if c}
    if status["status"] != "succeeded" or bad:
        err.print(f"[red]demo failed:[/] {status.get('error') or bad}", highlight=False)
        raise typer.Exit(1)


@demo_app.command("marketing")
@friendly
def demo_marketing(rows: Annotated[int, typer.Option(help="Rows of the bank's generated table (and, by default, "
                                                          "of the government's).")] = 20000,
                   gov_rows: Annotated[int | None, typer.Option(help="Enterprises at the government (default: "
                                                                 "--rows); those not at the bank are prospects.")] = None,
                   features: Annotated[int, typer.Option(help="Government features to screen (24-408).")] = 408,
                   short_list: Annotated[int, typer.Option(help="Government features kept by screening.")] = 20,
                   top_percent: Annotated[float, typer.Option(help="Prospects the government sends the bank, "
                                                                   "% of its prospects.")] = 10.0,
                   seed: Annotated[int, typer.Option(help="Seed of the data generator.")] = 0,
                   workdir: Annotated[Path | None, typer.Option(help="Where certificates, configs, data and job "
                                                                "stores go (default: a new temp folder).")] = None,
                   as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Run the precision-marketing pipeline on generated data.

    Screens the government's features, trains a federated model on the bank's campaign responses,
    scores the prospects at the government and prints the top-decile response rates of the
    bank-only and the federated targeting.
    """
    from privfin.scenarios.marketing import run_marketing

    if not as_json:
        console.print(f"[bold]privfin demo marketing[/]: bank (active) + gov (passive), generated data "
                      f"({rows:,} bank rows, {features} government features, seed {seed})")
    with Live(console=console, refresh_per_second=4, transient=as_json) as live:
        res = run_marketing(workdir=workdir, rows=rows, seed=seed, gov_features=features, gov_rows=gov_rows,
                            top_k_features=short_list, top_percent=top_percent,
                            on_status=None if as_json else lambda s: live.update(render.steps_table(s)))
    status, ev = res.status, res.evaluation
    if as_json:
        print(json.dumps({"wall_s": res.wall_s, "status": status["status"], **ev}))
    else:
        wanted = ("iv_select", "screen", "lr", "score_prospects", "psi")
        console.print(render.metrics_table([m for m in status["metrics"] if m[0] in wanted],
                                           title="summary at the bank"))
        h, p = ev.get("holdout", {}), ev.get("prospects")
        if "top_rate_lr" in h:
            console.print(f"[bold]holdout customers[/], top {top_percent:g}% response rate: bank-only "
                          f"{h['top_rate_bank_only']:.4f} -> federated {h['top_rate_lr']:.4f} "
                          f"(lift {h['top_rate_lr'] / max(h['top_rate_bank_only'], 1e-12):.2f}x; base rate "
                          f"{h['base_rate']:.4f})")
        if "auc_federated" in h:
            console.print(f"[bold]holdout customers[/], AUC bank-only {h['auc_bank_only']:.4f} -> federated "
                          f"{h['auc_federated']:.4f}; KS {h['ks_bank_only']:.4f} -> {h['ks_federated']:.4f}")
        if p:
            console.print(f"[bold]prospects[/] (true responses from the evaluation-only ground truth): top "
                          f"{top_percent:g}% by the government's score {p['targeted_rate']:.4f} vs bank-only "
                          f"targeting (no data on prospects: the base rate) {p['base_rate']:.4f}: lift "
                          f"{p['lift']:.2f}x ({p['targeted']:,} of {p['prospects']:,} prospects)")
        console.print(f"wall {res.wall_s:.1f} s; workdir: {res.workdir}  (`privfin jobs show {res.job_id} -c "
                      f"{res.workdir / 'bank' / 'party.toml'}`)")
        if "report" in ev:
            console.print(f"report: {ev['report']}")
    bad = {p_: c for p_, c in res.exit_codes.items() if c}
    if status["status"] != "succeeded" or bad:
        err.print(f"[red]demo failed:[/] {status.get('error') or bad}", highlight=False)
        raise typer.Exit(1)


# -- data ---------------------------------------------------------------------------------------------
@data_app.command("synth")
@friendly
def data_synth(out: Annotated[Path, typer.Option(help="Output folder.")],
               rows: Annotated[int, typer.Option(help="Rows of the bank's table.")] = 20000,
               seed: Annotated[int, typer.Option(help="Seed.")] = 0,
               overlap: Annotated[float, typer.Option(help="Share of the bank's ids also at the government.")] = 0.7,
               features: Annotated[int, typer.Option(help="Government features (24-408; extras are monthly-series "
                                                          "aggregates).")] = 24,
               gov_rows: Annotated[int | None, typer.Option(help="Enterprises at the government (default: --rows); "
                                                             "those that are not bank customers are prospects.")] = None,
               response: Annotated[bool, typer.Option(help="Add the marketing-response label and the prospects' "
                                                           "ground truth.")] = True,
               fmt: Annotated[str, typer.Option(help="csv or parquet.")] = "csv") -> None:
    """Generate the bank and government tables (seeded; see privfin.scenarios.synth).

    Files: bank (id, default label y, marketing label response, bank features) -- the bank's
    input; gov (id, government features) -- the government's input; prospects_truth (id,
    true_response of every government id that is not a bank customer) -- ground truth no party
    holds, only for evaluating targeting, never a party's input.
    """
    from privfin.scenarios import synth

    data = synth.generate(n_rows=rows, seed=seed, overlap=overlap, n_gov_features=features, n_gov_rows=gov_rows,
                          response=response)
    paths = synth.write(data, out, fmt=fmt)
    what = {"bank": "bank's input (label columns y, response)", "gov": "government's input",
            "prospects_truth": "ground truth, evaluation only: no party holds it"}
    for k, v in paths.items():
        console.print(f"{k}: {v}  ({what.get(k, '')})", highlight=False)


# -- bench --------------------------------------------------------------------------------------------
def _emit(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            console.print(f"{k:>20}: {v}")


@bench_app.command("transport")
@friendly
def bench_transport(size_mb: Annotated[int, typer.Option(help="Size of the array sent, MiB.")] = 256,
                    repeat: Annotated[int, typer.Option(help="Transfers timed (median reported).")] = 3,
                    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Two party processes over loopback gRPC/TLS: one sends a SIZE_MB array to the other."""
    from privfin.bench.transport import run_transport_bench

    _emit(run_transport_bench(size_mb=size_mb, repeat=repeat), as_json)


@bench_app.command("psi")
@friendly
def bench_psi(size: Annotated[int, typer.Option(help="Ids per party.")] = 100_000,
              overlap: Annotated[float, typer.Option(help="Share of ids in common.")] = 0.8,
              transport: Annotated[str, typer.Option(help="grpc (a process per party) or memory (threads).")] = "grpc",
              parties: Annotated[int, typer.Option(help=">= 3 runs the multi-party protocol (memory transport).")] = 2,
              reveal: Annotated[str, typer.Option(help="rows or size_only.")] = "rows",
              block: Annotated[int, typer.Option(help="Ids per streamed block.")] = 1 << 17,
              csv: Annotated[tuple[Path, Path] | None, typer.Option(help="Two one-column id files (header 'id') "
                                                                   "instead of generated sets.")] = None,
              check: Annotated[bool, typer.Option(help="Check the result against Python's set intersection.")] = True,
              protocol: Annotated[str, typer.Option(help="auto (KKRT for two parties revealing rows, else ECDH), "
                                                             "ecdh or kkrt.")] = "auto",
              as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Two-party PSI (both parties' work; KKRT or ECDH) on generated 18-digit ids or given files."""
    from privfin.bench.psi import bench_psi as run, run_memory_multi
    from privfin.psi import PsiParams

    if parties >= 3:
        res = run_memory_multi(size, overlap, parties, PsiParams(reveal=reveal, block=block, on_empty="allow"))
    else:
        res = run(size, overlap, transport=transport, reveal=reveal, block=block, check=check,
                  csv=(str(csv[0]), str(csv[1])) if csv else None, protocol=protocol)
    _emit(res, as_json)


@bench_app.command("psi-unbalanced")
@friendly
def bench_psi_unbalanced(small: Annotated[int, typer.Option(help="The client's ids.")] = 10_000,
                         large: Annotated[int, typer.Option(help="The server's ids (blinded once, cached).")] = 1_000_000,
                         repeats: Annotated[int, typer.Option(help="Online rounds (median reported).")] = 5,
                         as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Unbalanced PSI: a small set against a large set blinded once with a long-lived key."""
    from privfin.bench.psi_unbalanced import run_unbalanced_bench

    _emit(run_unbalanced_bench(small, large, repeats=repeats), as_json)


@bench_app.command("query")
@friendly
def bench_query(queries: Annotated[int, typer.Option(help="Ids in one query batch.")] = 1_000,
                list_size: Annotated[int, typer.Option("--list", help="Entries of the preprocessed list.")] = 1_000_000,
                repeats: Annotated[int, typer.Option(help="Online rounds (median reported).")] = 5,
                as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Anonymous query (labeled PSI): hit/no-hit and payload per id; the list holder learns the batch size."""
    from privfin.bench.psi_unbalanced import run_query_bench

    _emit(run_query_bench(queries, list_size, repeats=repeats), as_json)


@bench_app.command("features")
@friendly
def bench_features(data_dir: Annotated[str | None, typer.Option(help="The FATE default-credit split, read in place "
                                                                "(default: generated data).")] = None,
                   rows: Annotated[int, typer.Option(help="Rows of generated data.")] = 20000,
                   features: Annotated[int, typer.Option(help="Government features of generated data (24-408).")] = 24,
                   bins: Annotated[int, typer.Option(help="Quantile bins per feature.")] = 10,
                   scheme: Annotated[str, typer.Option(help="ou or paillier.")] = "ou",
                   key_bits: Annotated[int, typer.Option(help="Modulus size.")] = 2048,
                   repeats: Annotated[int, typer.Option(help="Runs (median reported).")] = 1,
                   check: Annotated[bool, typer.Option(help="Compare IVs with the plaintext computation.")] = True,
                   as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Federated binning and WOE/IV of every feature, both parties as processes over loopback TLS."""
    from privfin.bench.features import run_features_bench

    _emit(run_features_bench(data_dir, rows, features, bins, scheme, key_bits=key_bits, repeats=repeats, check=check),
          as_json)


@bench_app.command("lr")
@friendly
def bench_lr(data_dir: Annotated[str | None, typer.Option(help="The FATE default-credit split "
                                                          "(default ../shared/data/fate when present).")] = None,
             passives: Annotated[int, typer.Option(help="Passive parties (the provider's features split among them).")] = 1,
             key_bits: Annotated[int, typer.Option(help="Paillier modulus.")] = 2048,
             epochs: Annotated[int, typer.Option(help="Epochs.")] = 10,
             batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 1024,
             learning_rate: Annotated[float, typer.Option(help="Learning rate.")] = 0.1,
             l2: Annotated[float, typer.Option(help="L2 penalty.")] = 0.0,
             predict: Annotated[int, typer.Option(help="Then run federated prediction: the holdout batch and "
                                                  "this many single-id requests (p50/p99 latency).")] = 0,
             class_weight: Annotated[str | None, typer.Option(help="Class weights: 'balanced' (default: none).")] = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Vertical federated logistic regression on default-credit against the same algorithm trained centrally."""
    from privfin.bench.lr import run_lr_bench

    _emit(run_lr_bench(data_dir, passives=passives, key_bits=key_bits, epochs=epochs, batch_size=batch_size,
                       learning_rate=learning_rate, l2=l2, predict=predict, class_weight=class_weight), as_json)


@bench_app.command("correlation")
@friendly
def bench_correlation(rows: Annotated[int, typer.Option(help="Rows held by both parties (generated data).")] = 30_000,
                      a_cols: Annotated[int, typer.Option(help="The bank's (active) columns.")] = 13,
                      p_cols: Annotated[int, typer.Option(help="The government's (passive) columns.")] = 10,
                      key_bits: Annotated[int, typer.Option(help="Paillier modulus.")] = 2048,
                      seed: Annotated[int, typer.Option(help="Seed of the data generator.")] = 0,
                      check: Annotated[bool, typer.Option(help="Compare with numpy on the joined data.")] = True,
                      as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Cross-party Pearson correlation between two processes over loopback gRPC/TLS."""
    from privfin.bench.correlation import bench_correlation as run

    _emit(run(rows, a_cols, p_cols, key_bits=key_bits, seed=seed, check=check), as_json)


@bench_app.command("boost")
@friendly
def bench_boost(data_dir: Annotated[str | None, typer.Option(help="The FATE default-credit split (default "
                                                             "../shared/data/fate when present, else generated data).")] = None,
                passives: Annotated[int, typer.Option(help="Passive parties (the provider's features split among them).")] = 1,
                trees: Annotated[int, typer.Option(help="Boosting rounds.")] = 30,
                depth: Annotated[int, typer.Option(help="Tree depth.")] = 3,
                bins: Annotated[int, typer.Option(help="Quantile bins per feature.")] = 32,
                learning_rate: Annotated[float, typer.Option(help="Learning rate (eta).")] = 0.3,
                reg_lambda: Annotated[float, typer.Option(help="L2 regularization lambda.")] = 0.1,
                key_bits: Annotated[int, typer.Option(help="OU modulus.")] = 2048,
                rows: Annotated[int | None, typer.Option(help="Only the first rows by id (generated: row count).")] = None,
                generated: Annotated[bool, typer.Option(help="Generated data even where default-credit exists.")] = False,
                as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """SecureBoost on default-credit (training + federated holdout prediction) against xgboost on the joined bins."""
    from privfin.bench.boost import run_boost_bench

    _emit(run_boost_bench(data_dir, passives=passives, n_trees=trees, max_depth=depth, bins=bins,
                          learning_rate=learning_rate, reg_lambda=reg_lambda, key_bits=key_bits, rows=rows,
                          generated=generated), as_json)


@bench_app.command("ss")
@friendly
def bench_ss(rows: Annotated[int, typer.Option(help="Rows N of the shared matrix.")] = 100_000,
             cols: Annotated[int, typer.Option(help="Columns D of the shared matrix.")] = 50,
             triples: Annotated[str, typer.Option(help="he (two-party, no dealer) or dealer (a third party).")] = "he",
             key_bits: Annotated[int, typer.Option(help="Paillier modulus for triple generation.")] = 2048,
             as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """A secret-shared (N x D) @ (D x 1) product between two processes, triple generation included."""
    from privfin.bench.ss import run_ss_bench

    _emit(run_ss_bench(rows, cols, key_bits=key_bits, triples=triples), as_json)


@bench_app.command("he")
@friendly
def bench_he(key_bits: Annotated[int, typer.Option(help="Modulus size (2048 or 3072).")] = 2048,
             seconds: Annotated[float, typer.Option(help="CPU seconds per measurement.")] = 1.0,
             repeats: Annotated[int, typer.Option(help="Measurements per operation (median reported).")] = 3,
             pool: Annotated[bool, typer.Option(help="Also measure encryption through the process pool.")] = True,
             peers: Annotated[str | None, typer.Option(metavar="PYTHON", help="Python of a venv with phe and sf-heu: "
                                                       "alternate ../shared/peers/bench/he_peers.py with privfin.")] = None,
             runs: Annotated[int, typer.Option(help="Alternating runs with --peers.")] = 3,
             peer_script: Annotated[str | None, typer.Option(help="Path of he_peers.py, if not found.")] = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Per-core operations per second of Paillier and OU: encrypt, decrypt, add, scalar multiply."""
    from privfin.bench.he import compare_with_peers, run_he_bench

    if peers:
        _emit(compare_with_peers(peers, runs, seconds, peer_script), as_json)
    else:
        _emit(run_he_bench(key_bits, seconds, repeats, pool=pool), as_json)


if __name__ == "__main__":  # pragma: no cover
    app()
