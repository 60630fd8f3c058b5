"""The ``ledgerlink`` command line.

Exit codes: 0 all done; 1 some documents failed or were quarantined (or a
connection could not be reached); 2 usage or configuration error (including a
rejected token). Errors are one line; a traceback only with ``-vv``.
Heavy modules are imported inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from ._states import DocumentState, OutcomeState, payment_refusal

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_BUSY = 75
"""Another command works on the pipeline, or a vendor asked to wait longer than a run
waits (EX_TEMPFAIL: try again later)."""
NEEDS_A_PERSON = (OutcomeState.FAILED, OutcomeState.QUARANTINED, OutcomeState.CANCELLED)
"""Outcomes that make a run exit 1."""


class State:
    def __init__(self, config: str | None = None, verbose: int = 0, log_file: str | None = None,
                 wait: float | None = None) -> None:
        self.config_path = config
        self.verbose = verbose
        self.log_file = log_file
        self.wait = wait
        self.log_json: bool | None = None
        self._config: Any = None
        self.ledger_url: str | None = None
        """The ledger this command opened (named in the one line of a ledger failure)."""

    def config(self) -> Any:
        if self._config is None:
            from ._config import load_config

            self._config = load_config(self.config_path)
            self.ledger_url = self._config.ledger_url
        return self._config

    def runtime(self, reporter: Any = None, *, keep_outcomes: bool = True) -> Any:
        from ._runner import Runtime

        return Runtime(self.config(), reporter=reporter, keep_outcomes=keep_outcomes, lock_wait=self.wait or 0.0)

    def pipelines(self, name: str | None) -> list[Any]:
        config = self.config()
        if name:
            return [config.pipeline(name)]
        return [p for p in config.pipelines if p.enabled]


class _JsonLines(logging.Formatter):
    """One JSON object per log record: time (UTC, ISO 8601), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        from datetime import UTC, datetime

        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(entry, ensure_ascii=False)


_STDERR_JSON = False
"""``--log-json`` given: every line the CLI writes to stderr is a JSON object (see ``_say``)."""


def _say(text: str, level: str = "info") -> None:
    """One line for a person on stderr (a wait, progress, an error); with ``--log-json``
    the same line as a JSON object like the log's, so a log collector reads stderr whole."""
    if _STDERR_JSON:
        record = logging.LogRecord("ledgerlink.cli", getattr(logging, level.upper()), __file__, 0, text, None, None)
        click.echo(_JsonLines().format(record), err=True)
    else:
        click.echo(text, err=True)


class _NotShownTwice(logging.Filter):
    """Drops a record the CLI's reporter already shows as its own line (an HTTP
    back-off is a ``wait:`` line); a log file keeps it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "ledgerlink_shown", False)


def _setup_logging(verbose: int, log_file: str | None, *, json_lines: bool = False) -> None:
    from ._http import RedactingFilter

    global _STDERR_JSON
    _STDERR_JSON = json_lines

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger("ledgerlink")
    root.setLevel(level)
    root.handlers.clear()
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    handler.addFilter(_NotShownTwice())
    root.addHandler(handler)
    if log_file:
        file_handler = _PrivateFileHandler(log_file)
        file_handler.setFormatter(_JsonLines() if json_lines else
                                  logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        file_handler.addFilter(RedactingFilter())
        root.addHandler(file_handler)
    root.propagate = False


class _PrivateFileHandler(logging.FileHandler):
    """A log file made with mode 0600 (it names documents and customers); a folder that
    is missing or not writable is one line and exit 2."""

    def __init__(self, path: str) -> None:
        super().__init__(path, encoding="utf-8")

    def _open(self) -> Any:
        from ._files import open_private_append

        return open_private_append(self.baseFilename, what="log file")


def _ledger_failure(ctx: click.Context, exc: BaseException) -> str | None:
    """One line for the ledger's database failing during a command (a full disk, a
    read-only file, PostgreSQL gone away); None for any other error."""
    if not any(cls.__name__ == "OperationalError" for cls in type(exc).__mro__):
        return None
    from ._ledger import describe_ledger_failure

    url = ctx.obj.ledger_url if isinstance(ctx.obj, State) else None
    if url is None:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"the ledger failed: {detail[0] if detail else type(exc).__name__}; check its disk or server and run again"
    return describe_ledger_failure(url, exc)


def _fail(message: str, code: int) -> None:
    from ._http import redact

    _say(f"error: {redact(message)}", "error")
    sys.exit(code)


def _global_options() -> list[click.Option]:
    """The options every command and group takes, before or after its name (a fresh copy for each)."""
    return [
        click.Option(["-c", "--config", "config_path"], envvar="LEDGERLINK_CONFIG", type=click.Path(dir_okay=False),
                     help="Config file (default: ledgerlink.toml here, or $LEDGERLINK_CONFIG)."),
        click.Option(["-v", "--verbose"], count=True, help="More output: -v progress and waits, -vv debug."),
        click.Option(["--log-file"], type=click.Path(), metavar="FILE", help="Also write the log to this file."),
        click.Option(["--log-json"], is_flag=True, default=None, envvar="LEDGERLINK_LOG_JSON",
                     help="Log as JSON lines (time, level, logger, message) for a log collector."),
        click.Option(["--wait"], type=click.FloatRange(min=0), metavar="SECONDS",
                     help="When another command works on a pipeline, wait up to SECONDS for it "
                          "(default: say who holds it and exit 75 at once)."),
    ]


# The parameter names double as the State attributes they set.
_GLOBAL_NAMES = tuple(str(option.name) for option in _global_options())
_GLOBAL_SECTION = "Global options (before or after the command; the one after wins)"


class GlobalOptionsCommand(click.Command):
    """A command that takes the global options (``-c``, ``-v``, ``--log-file``) after its name too.

    Its parent group takes them as well (before the name); each level copies the ones given on its part of
    the command line into the shared State, outermost first, so the one nearest the end wins. The root
    also takes ``$LEDGERLINK_CONFIG``. Logging is set up once, just before the command itself runs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options())

    def invoke(self, ctx: click.Context) -> Any:
        from click.core import ParameterSource

        state = ctx.ensure_object(State)
        given = {ParameterSource.COMMANDLINE}
        if ctx.parent is None:
            given.add(ParameterSource.ENVIRONMENT)
        for name in _GLOBAL_NAMES:
            value = ctx.params.pop(name, None)
            if ctx.get_parameter_source(name) in given:
                setattr(state, name, value)
        if not isinstance(self, click.Group):
            _setup_logging(state.verbose, state.log_file, json_lines=bool(state.log_json))
        return super().invoke(ctx)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own: list[tuple[str, str]] = []
        shared: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and not isinstance(param, click.Argument):
                (shared if param.name in _GLOBAL_NAMES else own).append(record)
        if own:
            with formatter.section("Options"):
                formatter.write_dl(own)
        with formatter.section(_GLOBAL_SECTION):
            formatter.write_dl(shared)
        if isinstance(self, click.Group):
            self.format_commands(ctx, formatter)


class GlobalOptionsGroup(GlobalOptionsCommand, click.Group):
    """A group whose commands and subgroups all take the global options."""

    command_class = GlobalOptionsCommand


GlobalOptionsGroup.group_class = GlobalOptionsGroup


class LedgerlinkGroup(GlobalOptionsGroup):
    """Turns ledgerlink's errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        from ._errors import ConfigError, ConnectionError_, LedgerlinkError
        from ._locks import PipelineBusy

        try:
            return super().invoke(ctx)
        except PipelineBusy as exc:
            _fail(str(exc), EXIT_BUSY)
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)
        except ConnectionError_ as exc:
            _fail(str(exc), EXIT_USAGE)
        except LedgerlinkError as exc:
            _fail(str(exc), EXIT_FAILED)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(EXIT_OK)
        except Exception as exc:
            verbose = (ctx.obj.verbose if isinstance(ctx.obj, State) else 0)
            if verbose >= 2:
                raise
            ledger_failure = _ledger_failure(ctx, exc)
            if ledger_failure is not None:
                _fail(ledger_failure, EXIT_USAGE)
            _fail(f"internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback)", EXIT_FAILED)


@click.group(cls=LedgerlinkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ledgerlink")
def main() -> None:
    """Move invoices and orders from where sales happen to where money is booked.

    Start with `ledgerlink demo`, then write a ledgerlink.toml (see README),
    `ledgerlink config validate`, `ledgerlink check` and `ledgerlink run --dry-run`.

    The global options (-c, -v, --log-file) go before or after the command:
    `ledgerlink -c f.toml run` or `ledgerlink run -c f.toml -vv`; given in both
    places, the one after the command wins.
    """


# -- plugins -------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def plugins(as_json: bool) -> None:
    """List installed plugins: name, distribution, version, kinds and hooks."""
    from ._plugins import get_plugin_manager

    pm = get_plugin_manager()
    items: list[dict[str, Any]] = []
    for info in pm.registry.plugins:
        provided = {kind: sorted(name for name, reg in pm.registry.items[kind].items()
                                 if reg.distribution == info.distribution)
                    for kind in info.kinds}
        items.append({
            "name": info.name, "distribution": info.distribution, "version": info.version,
            "kinds": sorted(info.kinds), "hooks": info.hooks, "provides": provided,
            **({"error": info.error} if info.error else {}),
        })
    if as_json:
        click.echo(json.dumps({"plugins": items, "problems": pm.registry.problems,
                               "sources": pm.registry.names("source"), "targets": pm.registry.names("target"),
                               "matchers": pm.registry.names("matcher"),
                               "status_mappers": pm.registry.names("status_mapper")}, indent=2))
        return
    rows = [[i["name"], i["distribution"], i["version"], ",".join(i["kinds"]) or "-",
             "; ".join(f"{k}: {', '.join(v)}" for k, v in i["provides"].items())] for i in items]
    _table(["plugin", "distribution", "version", "kinds", "provides"], rows)
    for problem in pm.registry.problems:
        _say(f"warning: {problem}", "warning")


# -- config ------------------------------------------------------------------------------
@main.group()
def config() -> None:
    """Validate, show (secrets redacted) or describe the config file."""


@config.command("validate")
@click.pass_obj
def config_validate(state: State) -> None:
    """Check the config file; one line per problem, exit 2 if any."""
    cfg = state.config()
    click.echo(f"{cfg.path}: ok ({len(cfg.connections)} connections, {len(cfg.pipelines)} pipelines)")


@config.command("show")
@click.pass_obj
def config_show(state: State) -> None:
    """Print the config as ledgerlink reads it, with secrets redacted (JSON)."""
    click.echo(json.dumps(state.config().redacted(), indent=2, default=str))


@config.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file (core and installed plugins)."""
    from ._config import json_schema
    from ._plugins import get_plugin_manager

    click.echo(json.dumps(json_schema(get_plugin_manager().registry), indent=2, default=str))


# -- check ----------------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def check(state: State, as_json: bool) -> None:
    """Test every connection with one cheap call; one line each."""
    from ._errors import ConnectionError_, LedgerlinkError

    runtime = state.runtime()
    results = []
    worst = EXIT_OK
    for name, conn in runtime.config.connections.items():
        backoff = runtime.ledger.backoff(name)
        if backoff is not None:
            # Asking now would only be refused again (and prolong the wait).
            until = backoff.until.strftime("%Y-%m-%d %H:%M:%S UTC")
            results.append({"connection": name, "plugin": conn.plugin, "ok": False,
                            "detail": f"not asked: the vendor asked to wait until {until} (Retry-After)"})
            worst = worst or EXIT_BUSY
            continue
        try:
            connector = runtime.connector(name)
            try:
                detail = connector.check()
            finally:
                connector.close()
            results.append({"connection": name, "plugin": conn.plugin, "ok": True, "detail": detail})
        except ConnectionError_ as exc:
            results.append({"connection": name, "plugin": conn.plugin, "ok": False, "detail": str(exc)})
            worst = EXIT_USAGE
        except LedgerlinkError as exc:
            results.append({"connection": name, "plugin": conn.plugin, "ok": False, "detail": str(exc)})
            worst = max(worst, EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        for r in results:
            click.echo(f"{'ok  ' if r['ok'] else 'FAIL'} {r['connection']} ({r['plugin']}): {r['detail']}")
    sys.exit(worst)


# -- run ------------------------------------------------------------------------------------
PLAIN_PROGRESS_SECONDS = 30.0
"""Without a terminal, a progress line at most this often (s)."""


class CliReporter:
    """Prints outcomes as they come. On a terminal a progress bar per pipeline shows
    documents done (of the total where known), per second, the time left and the current
    wait; without one, a plain progress line every 30 s; with --json nothing extra.
    ``totals``: a total per pipeline (``retry`` knows them from the ledger); ``noun``: what
    is counted (``match-customers`` counts customers)."""

    def __init__(self, *, as_json: bool, verbose: int, dry_run: bool, total: int | None = None,
                 totals: dict[str, int] | None = None, noun: str = "documents") -> None:
        self.as_json = as_json
        self.verbose = verbose
        self.dry_run = dry_run
        self.count = 0
        self.total = total
        self.totals = dict(totals or {})
        self.noun = noun
        self.started = time.monotonic()
        self.last_line = self.started
        self.tty = sys.stderr.isatty()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        if self.tty and not as_json and not dry_run and not _STDERR_JSON:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[done]}"),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[wait]}"), console=Console(stderr=True), transient=True)
            self._progress.start()

    def _advance(self, pipeline: str) -> None:
        with self._lock:
            done = self._counts[pipeline] = self._counts.get(pipeline, 0) + 1
            elapsed = max(time.monotonic() - self.started, 1e-6)
            total = self.totals.get(pipeline, self.total)
            if total:
                total = max(total, done)  # a payment booked on the way is one more outcome
            if self._progress is not None:
                task = self._tasks.get(pipeline)
                if task is None:
                    task = self._tasks[pipeline] = self._progress.add_task(
                        pipeline, total=total, done="", rate="", wait="")
                shown = f"{done}/{total} {self.noun}" if total else f"{done} {self.noun}"
                self._progress.update(task, total=total, completed=done, done=shown, rate=f"{done / elapsed:.1f}/s",
                                      wait="")
            elif not self.as_json and time.monotonic() - self.last_line >= PLAIN_PROGRESS_SECONDS:
                self.last_line = time.monotonic()
                of = f" of {total}" if total else ""
                _say(f"progress: {pipeline}: {done}{of} {self.noun} ({done / elapsed:.1f}/s)")

    def document(self, outcome: Any) -> None:
        self.count += 1
        self._advance(outcome.pipeline)
        if self.as_json:
            return
        if self.dry_run:
            click.echo(_describe_plan(outcome))
            return
        if outcome.state in NEEDS_A_PERSON + (OutcomeState.CHANGED, OutcomeState.REVERSED) or self.verbose:
            where = f" -> {outcome.target_ref}" if outcome.target_ref else ""
            reason = f": {outcome.reason}" if outcome.reason else ""
            self._echo(f"{outcome.state:<11} {outcome.pipeline} {outcome.number or outcome.source_ref}{where}{reason}")

    def _echo(self, text: str, *, err: bool = False, level: str = "info") -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        elif err:
            _say(text, level)
        else:
            click.echo(text)

    def message(self, text: str) -> None:
        if not self.as_json or self.verbose:
            self._echo(text, err=True)

    def wait(self, text: str) -> None:
        if self._progress is not None and self._tasks and not self.verbose:
            with self._lock:  # the bar shows the current wait
                for task in self._tasks.values():
                    self._progress.update(task, wait=f"wait: {text[:80]}")
            return
        self._echo(f"wait: {text}", err=True, level="warning")

    def tick(self, pipeline: str) -> None:
        """One more item of long work that is not a document (a customer matched)."""
        self._advance(pipeline)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _describe_plan(outcome: Any) -> str:
    """One document of `run --dry-run`: where each line goes, its tax treatment and why,
    and the VAT per rate that will land in the target."""
    head = f"{outcome.pipeline} {outcome.number or outcome.source_ref}: {outcome.state}"
    if outcome.state != OutcomeState.PLANNED or not outcome.plan:
        return head + (f" ({outcome.reason})" if outcome.reason else "")
    plan = outcome.plan
    lines = [head + f" {outcome.gross} {outcome.currency}",
             f"    contact: {outcome.reason or '-'}",
             f"    date {plan['document_date']}, due {plan['due_date']}, tags {', '.join(plan['tags']) or '-'},"
             f" cost centre {plan['cost_centre'] or '-'}, {'paid' if plan['mark_paid'] else 'open'}"]
    if plan.get("reverses"):
        lines.append(f"    credit note referencing {plan['reverses']} in the target")
    if plan.get("exchange_rate"):
        lines.append(f"    exchange rate {plan['exchange_rate']} {plan['book_currency']} per {outcome.currency}")
    if plan.get("voucher_account"):
        lines.append(f"    gift vouchers booked as payment from account {plan['voucher_account']}")
    for line in plan["lines"]:
        lines.append(f"    {line['kind']:<8} account {line['account'] or '(target default)'} "
                     f"tax {line['tax_rate']}% {line['treatment']}{' rule ' + line['tax_rule'] if line['tax_rule'] else ''}"
                     f" net {line['net']} tax {line['tax']} gross {line['gross']}  {line['description'][:40]}")
        if line.get("why"):
            lines.append(f"             why: {line['why']}")
    for rate in plan.get("vat_by_rate", []):
        lines.append(f"    VAT {rate['treatment']} {rate['tax_rate']} %: net {rate['net']}, VAT {rate['tax']}, "
                     f"gross {rate['gross']} {outcome.currency}")
    return "\n".join(lines)


def _summarise(results: list[Any], as_json: bool, reporter: CliReporter | None = None) -> int:
    if reporter is not None:
        reporter.close()
    code = EXIT_OK
    out = []
    for result in results:
        counts = result.counts()
        if result.busy or result.deferred:
            code = max(code, EXIT_BUSY)
        elif result.error:
            code = max(code, EXIT_USAGE if result.needs_config else EXIT_FAILED)
        elif any(counts.get(state) for state in NEEDS_A_PERSON):
            code = max(code, EXIT_FAILED)
        out.append({"pipeline": result.pipeline, "counts": counts, "error": result.error,
                    "contacts_created": result.contacts_created,
                    "documents": [o.as_dict() for o in result.outcomes]})
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
    else:
        for item in out:
            counts = ", ".join(f"{v} {k}" for k, v in sorted(item["counts"].items())) or "nothing new"
            line = f"{item['pipeline']}: {counts}"
            if item["error"]:
                line += f"; stopped: {item['error']}"
            click.echo(line)
    return code


@main.command()
@click.option("-p", "--pipeline", help="Run only this pipeline (default: all enabled).")
@click.option("--dry-run", is_flag=True, help="Print the plan for each document; write nothing.")
@click.option("-j", "--jobs", default=4, show_default=True, help="Pipelines with different targets run side by side.")
@click.option("--look-up-first", is_flag=True,
              help="Ask the target for every new document before pushing it (after restoring an older backup of "
                   "the ledger; a run does it by itself when the ledger has no record of the target account).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def run(state: State, pipeline: str | None, dry_run: bool, jobs: int, look_up_first: bool, as_json: bool) -> None:
    """Transfer new and changed documents (incremental, from each pipeline's cursor)."""
    from ._pipelines import run_pipelines

    reporter = CliReporter(as_json=as_json, verbose=state.verbose, dry_run=dry_run)
    # Outcomes are printed as they come; only --json needs them all at the end (memory stays flat).
    runtime = state.runtime(reporter, keep_outcomes=as_json)
    results = run_pipelines(runtime, state.pipelines(pipeline), jobs=jobs,
                            run=lambda runner: runner.run(dry_run=dry_run, look_up_first=look_up_first))
    sys.exit(_summarise(results, as_json, reporter))


@main.command()
@click.option("-p", "--pipeline", required=True)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First date (inclusive).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last date (inclusive; default today).")
@click.option("--id", "ids", multiple=True, help="A source document id (repeatable).")
@click.option("--dry-run", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def backfill(state: State, pipeline: str, since: Any, until: Any, ids: tuple[str, ...], dry_run: bool,
             as_json: bool) -> None:
    """Transfer older documents by date range or id; the cursor is not moved."""
    from datetime import date

    from ._pipelines import iter_documents_by_ids
    from ._runner import PipelineRunner

    if not since and not ids:
        raise click.UsageError("give --since (and optionally --until) or one or more --id")
    reporter = CliReporter(as_json=as_json, verbose=state.verbose, dry_run=dry_run, total=len(ids) or None)
    runtime = state.runtime(reporter)
    runner = PipelineRunner(runtime, state.config().pipeline(pipeline))
    try:
        if ids:
            docs = iter_documents_by_ids(runner.source, list(ids))
        else:
            docs = runner.source.documents_between(since.date(), (until.date() if until else date.today()))
        result = runner.run(dry_run=dry_run, command="backfill", documents=docs, use_cursor=False, retry_failed=False)
    finally:
        runner.close()
    sys.exit(_summarise([result], as_json, reporter))


@main.command()
@click.option("-p", "--pipeline")
@click.option("--quarantined/--no-quarantined", default=True, show_default=True,
              help="Also retry quarantined documents (after you fixed rules or data).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def retry(state: State, pipeline: str | None, quarantined: bool, as_json: bool) -> None:
    """Try failed (and quarantined) documents again."""
    from ._operations import retry_total
    from ._pipelines import run_pipelines

    reporter = CliReporter(as_json=as_json, verbose=max(state.verbose, 1), dry_run=False)
    runtime = state.runtime(reporter)
    # The ledger knows how many documents retry takes up: a total (and so an ETA) per pipeline.
    reporter.totals = {p.name: retry_total(runtime, p, quarantined=quarantined) for p in state.pipelines(pipeline)}
    results = run_pipelines(runtime, state.pipelines(pipeline),
                            run=lambda runner: runner.run(command="retry", documents=[], retry_failed=True,
                                                          retry_quarantined=quarantined))
    sys.exit(_summarise(results, as_json, reporter))


# -- customers ----------------------------------------------------------------------------------
@main.command("match-customers")
@click.option("-p", "--pipeline")
@click.option("--dry-run", is_flag=True, help="Show what would be linked; store nothing.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def match_customers_cmd(state: State, pipeline: str | None, dry_run: bool, as_json: bool) -> None:
    """Link source customers to existing target contacts (no duplicates later)."""
    from ._operations import VendorBackedOff, match_customers

    reporter = CliReporter(as_json=as_json, verbose=state.verbose, dry_run=False, noun="customers")
    runtime = state.runtime(reporter)
    report = {}
    code = EXIT_OK
    try:
        for p in state.pipelines(pipeline):
            try:
                report[p.name] = match_customers(runtime, p, dry_run=dry_run)
            except VendorBackedOff as exc:
                _say(f"skipped: {exc}", "warning")
                code = EXIT_BUSY
    finally:
        reporter.close()
    if as_json:
        click.echo(json.dumps({name: [r.as_dict() for r in rows] for name, rows in report.items()}, indent=2))
        sys.exit(code)
    for name, rows in report.items():
        summary: dict[str, int] = {}
        for r in rows:
            summary[r.outcome] = summary.get(r.outcome, 0) + 1
        click.echo(f"{name}: " + ", ".join(f"{summary.get(k, 0)} {k.replace('_', ' ')}"
                                           for k in ("linked", "already_linked", "ambiguous", "no_match")))
        _table(["customer", "name", "outcome", "matcher", "contact / candidates"],
               [[r.source_id, r.name[:30], r.outcome.replace("_", " "), r.matcher or "-",
                 r.contact or "; ".join(r.candidates) or "-"] for r in rows if r.outcome != "already_linked"])
    sys.exit(code)


@main.command("link-customer")
@click.option("-p", "--pipeline", required=True)
@click.argument("source_id")
@click.argument("target_id")
@click.pass_obj
def link_customer_cmd(state: State, pipeline: str, source_id: str, target_id: str) -> None:
    """Link a source customer to a target contact by hand (never overwritten)."""
    from ._operations import link_customer

    link = link_customer(state.runtime(), state.config().pipeline(pipeline), source_id, target_id)
    click.echo(f"linked {source_id} -> {link.target_customer_number or link.target_contact_id} (manual)")


@main.command("unlink-customer")
@click.option("-p", "--pipeline", required=True)
@click.argument("source_id")
@click.pass_obj
def unlink_customer_cmd(state: State, pipeline: str, source_id: str) -> None:
    """Remove a customer link (the next push matches again)."""
    from ._operations import unlink_customer

    if unlink_customer(state.runtime(), state.config().pipeline(pipeline), source_id):
        click.echo(f"unlinked {source_id}")
    else:
        click.echo(f"{source_id} was not linked")


# -- status ---------------------------------------------------------------------------------------
@main.command()
@click.option("-p", "--pipeline")
@click.option("--state", "states", multiple=True,
              type=click.Choice([state.value for state in DocumentState] + ["changed", "payment-refused"]),
              help="Only documents in this state (repeatable); changed: changed after transfer; payment-refused: "
                   "pushed, with a payment the target refused (`retry` books it once fixed).")
@click.option("--history", is_flag=True, help="Show each document's status history.")
@click.option("--tenants", is_flag=True, help="One line per tenant of `ledgerlink serve` (and the config file's "
              "pipelines): last run, counts, oldest pending document.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(state: State, pipeline: str | None, states: tuple[str, ...], history: bool, tenants: bool,
           as_json: bool) -> None:
    """Every document with its state and reason (and its status in the target)."""
    from ._config import config_path, load_ledger_settings
    from ._errors import ConfigError
    from ._ledger import Ledger

    ledger_url, names = load_ledger_settings(state.config_path)
    state.ledger_url = ledger_url
    if tenants:
        from ._worker import tenants_status

        per_tenant = tenants_status(ledger_url)
        if as_json:
            click.echo(json.dumps(per_tenant, indent=2))
            return
        _table(["tenant", "pipelines", "last run", "outcome", "oldest pending", "documents"],
               [[t["tenant"] or "(config file)", t["pipelines"], t["last_run"] or "-", (t["last_outcome"] or "-")[:40],
                 t["oldest_pending"] or "-", ", ".join(f"{n} {k}" for k, n in sorted(t["counts"].items())) or "-"]
                for t in per_tenant])
        click.echo(f"{len(per_tenant)} tenants" if per_tenant else "no documents yet")
        return
    if pipeline and pipeline not in names:
        raise ConfigError(f"no pipeline named {pipeline!r} (pipelines: {', '.join(names) or 'none'})",
                          location=str(config_path(state.config_path)))
    ledger = Ledger(ledger_url)
    want = [s for s in states if s not in ("changed", "payment-refused")]
    rows = ledger.documents(pipeline, want or None)
    if "changed" in states or "payment-refused" in states:
        rows = [r for r in rows if r.state in want or ("changed" in states and r.changed)
                or ("payment-refused" in states and payment_refusal(r.state, r.payment_state))]
    histories: dict[tuple[str, str], list[Any]] = {}
    for h in ledger.status_history(pipeline):
        histories.setdefault((h.pipeline, h.source_ref), []).append(h)
    items: list[dict[str, Any]] = []
    for r in rows:
        item: dict[str, Any] = {"pipeline": r.pipeline, "source_ref": r.source_ref, "number": r.number, "state": r.state,
                "reason": r.reason, "target_id": r.target_id, "target_number": r.target_number,
                "attempts": r.attempts, "status": r.status, "status_raw": r.status_raw,
                "changed": r.changed, "payment": r.payment_state, "updated_at": r.updated_at.isoformat()}
        item["history"] = [{"at": h.at.isoformat(), "old": h.old, "new": h.new, "raw": h.raw,
                            "written_back": h.written_back} for h in histories.get((r.pipeline, r.source_ref), [])]
        items.append(item)
    if as_json:
        click.echo(json.dumps(items, indent=2, default=str))
        return
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    _table(["pipeline", "document", "state", "target", "status", "reason / changes"],
           [[i["pipeline"], i["number"] or i["source_ref"], i["state"], i["target_number"] or i["target_id"] or "-",
             i["status"] or "-", (i["changed"] or payment_refusal(i["state"], i["payment"]) or i["reason"] or "")[:90]]
            for i in items])
    if history:
        for i in items:
            for entry in i["history"]:
                click.echo(f"  {i['number'] or i['source_ref']}: {entry['at']} {entry['old'] or '-'} -> "
                           f"{entry['new']} (raw {entry['raw']!r})"
                           f"{' written back: ' + entry['written_back'] if entry['written_back'] else ''}")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no documents yet"
    refused = sum(1 for r in rows if payment_refusal(r.state, r.payment_state))
    if refused:
        summary += f" ({refused} with a payment the target refused: see above; `ledgerlink retry` books it once fixed)"
    click.echo(summary)
    for name, run_row in sorted(ledger.last_runs(pipeline).items()):
        click.echo(_describe_run(name, run_row))


def _describe_run(pipeline: str, run_row: Any) -> str:
    """The one line `status` gives for a pipeline's last run: when, which command, how it ended."""
    started = run_row.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    if run_row.finished_at is None:
        ended = "not finished: still running, or the process ended before it could record how (killed?)"
    else:
        ended = run_row.outcome or "ok"
    return f"last {run_row.command} of {pipeline}: {started}: {ended}"


@main.command("sync-status")
@click.option("-p", "--pipeline")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sync_status_cmd(state: State, pipeline: str | None, as_json: bool) -> None:
    """Fetch the status of pushed documents from the target; record changes; write back."""
    from ._operations import StatusSyncStopped, VendorBackedOff, sync_status

    runtime = state.runtime(CliReporter(as_json=as_json, verbose=state.verbose, dry_run=False))
    changes = []
    code = EXIT_OK
    for p in state.pipelines(pipeline):
        try:
            changes.extend(sync_status(runtime, p))
        except StatusSyncStopped as exc:
            changes.extend(exc.changes)
            _say(f"error: {exc}", "error")
            code = EXIT_FAILED
        except VendorBackedOff as exc:
            _say(f"skipped: {exc}", "warning")
            code = code or EXIT_BUSY
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in changes], indent=2))
        sys.exit(code)
    for c in changes:
        back = f" (written back: {c.written_back})" if c.written_back else ""
        click.echo(f"{c.pipeline} {c.source_ref}: {c.old or '-'} -> {c.new}{back}")
    click.echo(f"{len(changes)} status changes")
    sys.exit(code)


@main.command()
@click.option("-p", "--pipeline")
@click.option("--interval", default=300, show_default=True, help="Seconds between rounds.")
@click.option("--rounds", default=0, help="Stop after this many rounds (0: run until interrupted).")
@click.option("--no-status", is_flag=True, help="Only transfer documents; do not sync statuses.")
@click.pass_obj
def watch(state: State, pipeline: str | None, interval: int, rounds: int, no_status: bool) -> None:
    """Run and sync statuses in a loop."""
    from ._errors import LedgerlinkError
    from ._operations import sync_status
    from ._pipelines import run_pipelines

    reporter = CliReporter(as_json=False, verbose=state.verbose, dry_run=False)
    done = 0
    while True:
        runtime = state.runtime(reporter, keep_outcomes=False)
        # The lock names `watch` as its holder (a second command's busy line says so).
        results = run_pipelines(runtime, state.pipelines(pipeline), run=lambda runner: runner.run(command="watch"))
        _summarise(results, False, reporter)
        if not no_status:
            for p in state.pipelines(pipeline):
                try:
                    changes = sync_status(runtime, p, command="watch")
                except LedgerlinkError as exc:  # a bad answer must not end the watch
                    _say(f"error: {exc}", "error")
                    changes = getattr(exc, "changes", [])
                for c in changes:
                    click.echo(f"{c.pipeline} {c.source_ref}: {c.old or '-'} -> {c.new}")
        runtime.ledger.close()
        done += 1
        if rounds and done >= rounds:
            return
        time.sleep(interval)


@main.command()
@click.option("-p", "--pipeline")
@click.option("-o", "--output", type=click.Path(), metavar="FILE", help="Write the CSV here (default: stdout).")
@click.pass_obj
def audit(state: State, pipeline: str | None, output: str | None) -> None:
    """Export the audit log of every write to a target as CSV."""
    from ._config import load_ledger_settings
    from ._files import write_private
    from ._ledger import Ledger

    state.ledger_url = load_ledger_settings(state.config_path)[0]
    text = Ledger(state.ledger_url).audit_csv(pipeline)
    if output:
        write_private(output, text, what="audit export")  # 0600, whole or not at all
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


# -- sandboxes and the demo ------------------------------------------------------------------------
@main.group()
def sandbox() -> None:
    """Vendor emulators for tests and demos."""


def _sandbox_class(name: str) -> Any:
    from ._errors import ConfigError
    from ._plugins import get_plugin_manager, import_string

    registry = get_plugin_manager().registry
    for kind in ("source", "target"):
        reg = registry.items[kind].get(name)
        if reg is not None and reg.factory.sandbox:
            return import_string(reg.factory.sandbox)
    known = sorted(n for k in ("source", "target") for n, r in registry.items[k].items() if r.factory.sandbox)
    raise ConfigError(f"no sandbox named {name!r} (available: {', '.join(known) or 'none'})")


@sandbox.command("list")
def sandbox_list() -> None:
    """List the available sandboxes."""
    from ._plugins import get_plugin_manager

    registry = get_plugin_manager().registry
    for kind in ("source", "target"):
        for name, reg in sorted(registry.items[kind].items()):
            if reg.factory.sandbox:
                click.echo(f"{name} ({kind}, {reg.distribution})")


@sandbox.command("serve")
@click.argument("name")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, type=int, help="Port (0: any free one; printed on start).")
@click.option("--seed", "seed_file", type=click.Path(exists=True, dir_okay=False), help="Seed data in the vendor's JSON format.")
@click.option("--demo", is_flag=True, help="Start with the sandbox's demo data (its demo_seed()); not with --seed.")
@click.option("--state", "state_file", type=click.Path(dir_okay=False), help="Keep the state in this file across restarts.")
@click.option("--faults", "faults_json", help='Fault injection as JSON, e.g. \'{"rate_429": 0.1}\'.')
def sandbox_serve(name: str, host: str, port: int, seed_file: str | None, demo: bool, state_file: str | None,
                  faults_json: str | None) -> None:
    """Serve a vendor sandbox on loopback (until Ctrl-C); --demo: with its demo data."""
    from ._errors import ConfigError
    from ._sandbox import Faults, serve

    if demo and seed_file:
        raise ConfigError("--demo and --seed exclude each other: --demo loads the sandbox's demo data, --seed FILE yours")
    cls = _sandbox_class(name)
    seed = None
    if demo:
        seed = cls.demo_seed()
        if seed is None:
            raise ConfigError(f"the {name} sandbox has no demo data (its demo_seed() is None); serve it without --demo")
    # A state file that exists and is not empty is loaded instead of any seed.
    state_kept = bool(state_file) and Path(str(state_file)).is_file() and Path(str(state_file)).stat().st_size > 0
    if seed_file:
        try:
            seed = json.loads(Path(seed_file).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise click.UsageError(f"{seed_file}: not valid JSON ({exc})") from None
    try:
        faults = Faults.from_mapping(json.loads(faults_json)) if faults_json else None
    except ValueError as exc:
        raise click.UsageError(f"--faults: {exc}") from None
    instance = cls(seed=seed, state_path=state_file, faults=faults)

    def ready(bound: int) -> None:
        from ._config import toml_value

        root = f"http://{host}:{bound}"
        click.echo(f"{name} sandbox listening on {root} (API under {cls.base_path or '/'})", err=True)
        if demo and state_kept:
            click.echo(f"kept the state in {state_file} instead of the demo data (remove the file to start from "
                       f"the demo data): {instance.describe()}", err=True)
        elif demo:
            click.echo(f"loaded the demo data: {instance.describe()}", err=True)
        try:
            settings, env = instance.demo_connection(root)
        except NotImplementedError:
            settings, env = {}, {}
        if settings:
            click.echo("paste into ledgerlink.toml:", err=True)
            click.echo(f"  [connections.{name}]", err=True)
            click.echo(f"  plugin = {toml_value(name)}", err=True)
            for key, value in settings.items():
                if key != "plugin":
                    click.echo(f"  {key} = {toml_value(value)}", err=True)
            if env:
                click.echo("and set the sandbox's demo credentials:", err=True)
            for var, value in env.items():
                click.echo(f"  export {var}={value}", err=True)
        sys.stderr.flush()

    serve(instance, host=host, port=port, ready=ready)


@main.command("new")
@click.argument("kind", type=click.Choice(["source", "target", "status-mapper"]))
@click.argument("name")
@click.option("--directory", type=click.Path(file_okay=False), metavar="DIR",
              help="Where to write the package (default: ./ledgerlink-NAME); must not exist.")
def new(kind: str, name: str, directory: str | None) -> None:
    """Scaffold a connector package: `ledgerlink new source acme` writes ledgerlink-acme/
    (pyproject with the entry point, plugin, connector, mapping, sandbox, contract tests,
    README with the settings). NAME is the plugin name, a lowercase identifier."""
    from ._scaffold import create

    scaffold = create(kind, name, Path(directory) if directory else None)
    click.echo(f"created the {kind} package ledgerlink-{name} in {scaffold.root}:")
    for path in scaffold.files:
        click.echo(f"  {path.relative_to(scaffold.root).as_posix()}")
    click.echo("next:")
    for step in scaffold.next_steps():
        click.echo(f"  {step}")


@main.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False), default="demo-run", show_default=True,
              help="Where the demo keeps its config, ledger and sandbox state.")
@click.option("--fresh", is_flag=True, help="Start from empty sandboxes and ledger.")
@click.option("--list", "list_demos", is_flag=True, help="List the demos the installed plugins offer.")
@click.argument("name", required=False)
def demo(workdir: str, fresh: bool, list_demos: bool, name: str | None) -> None:
    """Run a demo: a source's sandbox into a target's sandbox on loopback, through the real
    pipeline. NAME picks one of `--list` (default: the first)."""
    from ._demo import run_demo
    from ._plugins import get_plugin_manager

    if list_demos:
        for demo_name, reg in sorted(get_plugin_manager().registry.items["demo"].items()):
            click.echo(f"{demo_name}: {reg.factory.source} -> {reg.factory.target} ({reg.distribution})"
                       + (f": {reg.factory.description}" if reg.factory.description else ""))
        return
    sys.exit(run_demo(Path(workdir), name=name, fresh=fresh, echo=click.echo))


@main.command()
@click.option("-p", "--pipeline", help="Serve this pipeline's source webhooks (as before); without it: the service "
              "for host applications.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--secret-file", type=click.Path(), metavar="FILE", default=".ledgerlink-webhook-secret",
              show_default=True, help="The random secret in the callback path (created if missing); without -p, "
              "with several pipelines taking webhooks: FILE.PIPELINE for each.")
@click.option("--ledger", "ledger_url", envvar="LEDGERLINK_SERVICE_LEDGER", default=None,
              help="The service's database (ledger, tenants, inbox): sqlite:/// or postgresql://. Default: with -c, "
              "the config's ledger (its pipelines are the tenant 'default'); else sqlite:///ledgerlink-service.db.")
@click.option("--workers", default=4, show_default=True, help="Background transfers at once.")
@click.option("--new-secret-key", is_flag=True, help="Print a new key for LEDGERLINK_SECRET_KEYS and exit.")
@click.pass_obj
def serve(state: State, pipeline: str | None, host: str, port: int, secret_file: str, ledger_url: str | None,
          workers: int, new_secret_key: bool) -> None:
    """The service for host applications (HTTP API, tenants, inbox; needs ledgerlink[server]), or with -p the
    endpoint for a source's webhooks."""
    if pipeline:
        from ._webhooks import serve_webhooks

        serve_webhooks(state, state.config().pipeline(pipeline), host=host, port=port, secret_file=Path(secret_file))
        return
    from ._serve import serve_service

    default = state.config() if state.config_path and not new_secret_key else None
    serve_service(ledger_url=ledger_url, host=host, port=port, workers=workers, new_secret_key=new_secret_key,
                  default=default, secret_file=Path(secret_file))


@main.group()
def webhooks() -> None:
    """Manage the source's webhook subscriptions (sources that take webhooks)."""


def _webhook_source(state: State, pipeline: str) -> Any:
    from ._connectors import WebhookSource
    from ._errors import ConfigError

    runtime = state.runtime()
    p = state.config().pipeline(pipeline)
    source = runtime.source(p.source)
    if not isinstance(source, WebhookSource):
        source.close()
        raise ConfigError(f"the source {p.source!r} offers no webhooks")
    return source


@webhooks.command("subscribe")
@click.option("-p", "--pipeline", required=True)
@click.option("--callback-url", required=True, help="The public URL of `ledgerlink serve` (with its secret path).")
@click.pass_obj
def webhooks_subscribe(state: State, pipeline: str, callback_url: str) -> None:
    """Subscribe the callback URL to every event the source offers (an existing one is fine)."""
    from ._errors import ConfigError

    source = _webhook_source(state, pipeline)
    try:
        events = list(source.webhook_events)
        if not events:
            raise ConfigError(f"the source of pipeline {pipeline!r} names no webhook events to subscribe to")
        for event in events:
            try:
                sub = source.subscribe(callback_url, event)
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
            ident = sub.get("id") if isinstance(sub, dict) else None
            click.echo(f"subscribed {event}" + (f" (subscription {ident})" if ident else ""))
    finally:
        source.close()


@webhooks.command("unsubscribe")
@click.option("-p", "--pipeline", required=True)
@click.option("--callback-url", required=True)
@click.pass_obj
def webhooks_unsubscribe(state: State, pipeline: str, callback_url: str) -> None:
    """Remove the subscriptions for the callback URL."""
    source = _webhook_source(state, pipeline)
    try:
        removed = list(source.unsubscribe(callback_url))
    finally:
        source.close()
    for ident in removed:
        click.echo(f"removed subscription {ident}")
    if not removed:
        click.echo("no subscriptions for that callback URL")


# -- workers (issue 21) ------------------------------------------------------------------------
@main.command()
@click.option("--broker", envvar="LEDGERLINK_BROKER_URL", help="amqp://... (RabbitMQ) or redis://... (Redis); "
              "default: [workers] broker_url, else $LEDGERLINK_BROKER_URL.")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Pipeline runs at once (default [workers] "
              "concurrency, 2).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Serve Prometheus metrics on 127.0.0.1:PORT.")
@click.option("--name", help="The worker's node name (default ledgerlink-PID@host).")
@click.pass_obj
def worker(state: State, broker: str | None, concurrency: int | None, metrics_port: int | None,
           name: str | None) -> None:
    """Run pipelines on Celery: take tasks from the broker's `ledgerlink` queue (needs
    a PostgreSQL ledger and `pip install 'ledgerlink[celery]'`)."""
    from ._worker import start_worker

    start_worker(state.config(), broker=broker, concurrency=concurrency, metrics_port=metrics_port, name=name)


@main.command()
@click.option("--broker", envvar="LEDGERLINK_BROKER_URL", help="As for `worker`.")
@click.option("--schedule-file", type=click.Path(dir_okay=False), help="Where the scheduler keeps its state "
              "(default .ledgerlink-beat-schedule beside the config).")
@click.pass_obj
def scheduler(state: State, broker: str | None, schedule_file: str | None) -> None:
    """Queue every enabled pipeline of every tenant at its own interval (pipeline key
    `interval`, spread over it): Celery beat for `ledgerlink worker`. Run one."""
    from ._worker import start_scheduler

    start_scheduler(state.config(), broker=broker, schedule_file=schedule_file)


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    if not rows:
        return
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    click.echo("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    main()
