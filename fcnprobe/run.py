"""Command line: ``python -m fcnprobe.run {all,erf,context,shape,cost,report,compare,list}``.

Exit codes: 0 ok; 1 some cells failed (the report is still written); 2 usage
error (one line, no traceback); 130 interrupted (finished cells are kept).

Examples::

    python -m fcnprobe.run all                         # quick preset, report at runs/latest/report/
    python -m fcnprobe.run context --models 'fcn*' --preset smoke --workers 1
    python -m fcnprobe.run erf --dry-run               # list the cells only
    python -m fcnprobe.run all --model mypkg.nets:my_net          # the probes on your own model
    python -m fcnprobe.run all --preset full --executor dask --address tcp://scheduler:8786
    python -m fcnprobe.run all --preset full --executor ray --address auto --device cuda --gpus-per-cell 0.25
    python -m fcnprobe.run report --out runs/latest    # rebuild the report from records
    python -m fcnprobe.run list
"""
from __future__ import annotations

import argparse
import difflib
import sys

from fcnprobe.errors import UsageError

PROBE_COMMANDS = ("context", "erf", "shape", "cost")
COMMANDS = ("all", *PROBE_COMMANDS, "report", "compare", "list")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line with a did-you-mean for subcommands."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("argument command: invalid choice"):  # not --preset's choices
            bad = message.split("'")[1] if "'" in message else ""
            close = difflib.get_close_matches(bad, COMMANDS, n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            message = f"unknown command '{bad}'{hint} available: {', '.join(COMMANDS)}"
        raise UsageError(message)


def _seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' or '0-2' or '3' (meaning 0, 1, 2)."""
    try:
        if "-" in text:
            lo, hi = (int(t) for t in text.split("-"))
            return tuple(range(lo, hi + 1))
        if "," in text:
            return tuple(int(t) for t in text.split(","))
        return tuple(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --seeds '{text}': use 3, 0,1,2 or 0-2") from None


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/latest", help="run directory (resumed if present)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--preset", default="quick", choices=("smoke", "quick", "full"))
    p.add_argument("--seeds", type=_seeds, default=(0,), help="3 | 0,1,2 | 0-2 (default: 0)")
    p.add_argument("--workers", type=int, default=0, help="processes; 1 = in this process; 0 = auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads per worker; 0 = cores/workers")
    p.add_argument("--models", nargs="+", default=(), metavar="GLOB", help="model name globs")
    p.add_argument("--tasks", nargs="+", default=(), metavar="GLOB", help="task name globs")
    p.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    p.add_argument("--overwrite", action="store_true", help="re-run cells that are already done")
    p.add_argument("--rerun-failed", action="store_true", help="re-run cells recorded as errors")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--model", action="append", default=[], dest="user_models", metavar="MODULE:FACTORY",
                   help="your own model factory (repeatable); with no --models only these run")
    p.add_argument("--executor", default="local", help="local | dask | ray (default: local)")
    p.add_argument("--address", default=None, help="dask scheduler tcp://host:port, or ray auto | ray://host:port")
    p.add_argument("--gpus-per-cell", type=float, default=0.0, help="ray: GPUs per cell, e.g. 0.25; 0 = 1 on CUDA")


def build_parser() -> Parser:
    parser = Parser(prog="python -m fcnprobe.run", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in ("all", *PROBE_COMMANDS):
        what = "every probe, then the report" if name == "all" else f"the {name} probe"
        p = sub.add_parser(name, help=f"run {what}",
                           epilog=f"example: python -m fcnprobe.run {name} --preset smoke --workers 1")
        _run_flags(p)
    p = sub.add_parser("report", help="rebuild the HTML report from stored records",
                       epilog="example: python -m fcnprobe.run report --out runs/latest")
    p.add_argument("--out", default="runs/latest")
    p = sub.add_parser("compare", help="report the deltas between two runs",
                       epilog="example: python -m fcnprobe.run compare runs/a runs/b --out runs/a-vs-b")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--out", default=None, help="where to write the comparison (default: RUN_B/compare)")
    sub.add_parser("list", help="list models, tasks and probes", epilog="example: python -m fcnprobe.run list")
    return parser


def _config(args: argparse.Namespace):
    from fcnprobe.config import RunConfig

    return RunConfig(out=args.out, device=args.device, preset=args.preset, seeds=tuple(args.seeds),
                     workers=args.workers, threads=args.threads, models=tuple(args.models),
                     tasks=tuple(args.tasks), overwrite=args.overwrite,
                     rerun_failed=args.rerun_failed, dry_run=args.dry_run, executor=args.executor,
                     address=args.address, gpus_per_cell=args.gpus_per_cell,
                     user_models=tuple(args.user_models))


def _check_user_models(paths: tuple[str, ...]) -> None:
    """Unimportable -> UsageError (exit 2); a factory the cells will reject -> one warning line."""
    from fcnprobe.user import factory_problem

    for path in paths:
        problem = factory_problem(path)
        if problem:
            print(f"fcnprobe: warning: {problem}; its cells will be error records", file=sys.stderr)


def _report_failures(summary, cfg) -> None:
    """One line per user model with failed cells, and one for cells lost with their workers."""
    for model in cfg.user_models:
        errs = [e for m, e in summary.errors if m == model]
        if errs:
            print(f"fcnprobe: {model}: {len(errs)} cells failed; first: {errs[0]}", file=sys.stderr)
    if summary.lost:
        print(f"fcnprobe: {len(summary.lost)} cells lost with their workers (first: {summary.lost[0]}); "
              "run the same command again to resume", file=sys.stderr)


def _sweep(probe_names: list[str], args: argparse.Namespace) -> int:
    """Run the sweep and print a summary line; the exit code says whether any cell failed."""
    from fcnprobe.sweep import run_sweep

    cfg = _config(args)
    _check_user_models(cfg.user_models)
    summary = run_sweep(probe_names, cfg, progress=not args.no_progress)
    if args.dry_run:
        for cell in summary.cells:
            print(f"{cell.cell_id}\t{cell.p}")
        print(f"{len(summary.cells)} cells")
        return EXIT_OK
    lost = f"{len(summary.lost)} lost, " if summary.lost else ""
    print(f"{summary.ok} ok, {summary.failed} failed, {lost}{summary.skipped} already done -> {args.out}")
    _report_failures(summary, cfg)
    return EXIT_FAILED if summary.failed or summary.lost else EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    from fcnprobe.probes import PROBES

    PROBES.get(args.command)  # 'not built yet' reads as an unknown probe
    return _sweep([args.command], args)


def cmd_all(args: argparse.Namespace) -> int:
    from fcnprobe.probes import probes_in_order

    code = _sweep(probes_in_order(), args)
    if not args.dry_run and _report_available():
        code = max(code, cmd_report(args))
    return code


def _report_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("fcnprobe.report.build") is not None


def cmd_report(args: argparse.Namespace) -> int:
    if not _report_available():
        raise UsageError("the HTML report is not built in this version; records are in records.csv")
    from fcnprobe.report.build import build_report

    path = build_report(args.out)
    print(f"report: {path.resolve().as_uri()}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    if not _report_available():
        raise UsageError("the HTML report is not built in this version")
    from fcnprobe.report.build import build_comparison

    path = build_comparison(args.run_a, args.run_b, args.out)
    print(f"comparison: {path.resolve().as_uri()}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from fcnprobe.models import MODELS, create_model, theoretical_receptive_field
    from fcnprobe.probes import probes_in_order
    from fcnprobe.tasks import TASKS

    print("models (params with a dense:4 head at 32x32; TRF in px, 'global' when unbounded):")
    for name in MODELS.names():
        native = MODELS.meta(name)["native"]
        m = create_model(name, head="dense:4" if "dense" in native else f"{native[0]}:4".replace("box:4", "box"))
        trf = theoretical_receptive_field(m, 32)
        print(f"  {name:24s} heads={','.join(native):18s} "
              f"params={sum(p.numel() for p in m.parameters()):>7d}  trf={trf or 'global'}")
    print("tasks:", ", ".join(TASKS.names()) or "(none)")
    print("probes:", ", ".join(probes_in_order()) or "(none)")
    return EXIT_OK


HANDLERS = {"all": cmd_all, "report": cmd_report, "compare": cmd_compare, "list": cmd_list,
            **{name: cmd_probe for name in PROBE_COMMANDS}}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m fcnprobe.run`` and the ``fcnprobe`` script."""
    from fcnprobe.sweep import SweepInterrupted, WorkerLost

    try:
        args = build_parser().parse_args(argv)
        return HANDLERS[args.command](args)
    except UsageError as exc:
        print(f"fcnprobe: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SweepInterrupted, KeyboardInterrupt) as exc:
        print(f"fcnprobe: {exc or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except WorkerLost as exc:
        print(f"fcnprobe: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
