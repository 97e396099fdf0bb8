"""Command line: ``python -m fcnprobe.run {all,<probe>...,report,compare,list}``.

Exit codes: 0 ok; 1 some cells failed, or a fault stopped the run after records
were kept (the report is still written when it can be); 2 usage or file-system
error before any record was kept (one line, no traceback; ``FCNPROBE_DEBUG=1``
shows it); 130 interrupted (finished cells are kept).

The probe subcommands come from the probe registry: a probe registered by a
plugin module (``--plugin MODULE`` or ``FCNPROBE_PLUGINS=mod1,mod2``) is a
subcommand too, and appears in ``list``.

Examples::

    python -m fcnprobe.run all --preset smoke          # a first try: about a minute; report at runs/latest/index.html
    python -m fcnprobe.run all                         # quick preset (a few minutes)
    python -m fcnprobe.run context --models 'fcn*' --preset smoke --workers 1
    python -m fcnprobe.run erf --dry-run               # list the cells only
    python -m fcnprobe.run all --model mypkg.nets:my_net          # the probes on your own model
    python -m fcnprobe.run all --preset full --executor dask --address tcp://scheduler:8786
    python -m fcnprobe.run all --preset full --executor ray --address auto --device cuda --gpus-per-cell 0.25
    python -m fcnprobe.run report --out runs/latest    # rebuild runs/latest/index.html from records
    python -m fcnprobe.run compare runs/a runs/b       # deltas, at runs/b/compare/index.html
    python -m fcnprobe.run list
    python -m fcnprobe.run diagnose mypkg.nets:my_net --image-size 256 --output out --out runs/diag
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

from fcnprobe.config import MAX_SEEDS, PRESETS
from fcnprobe.errors import RunDirBusy, SweepInterrupted, UsageError, WorkerLost

FIXED_COMMANDS = ("all", "report", "compare", "list", "diagnose")
LIGHT_COMMANDS = ("report", "compare")  # need no probe registry (and no torch)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line with a did-you-mean for subcommands."""

    commands: tuple[str, ...] = FIXED_COMMANDS

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("argument command: invalid choice"):  # not --preset's choices
            bad = message.split("'")[1] if "'" in message else ""
            close = difflib.get_close_matches(bad, Parser.commands, n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            message = f"unknown command '{bad}'{hint} available: {', '.join(Parser.commands)}"
        raise UsageError(message)


def _seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' or '0-2' or '3' (meaning 0, 1, 2); duplicates dropped; at most MAX_SEEDS."""
    try:
        if "-" in text:
            lo, hi = (int(t) for t in text.split("-"))
            seeds: list[int] | range = range(lo, hi + 1)
        elif "," in text:
            seeds = [int(t) for t in text.split(",")]
        else:
            seeds = range(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --seeds '{text}': use 3, 0,1,2 or 0-2") from None
    if len(seeds) > MAX_SEEDS or len(seeds) == 0:  # len(range) is O(1): 0-1000000 is refused at once
        raise argparse.ArgumentTypeError(f"--seeds '{text}' gives {len(seeds)} seeds; use 1 to {MAX_SEEDS}")
    return tuple(dict.fromkeys(seeds))


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/latest", help="run directory (resumed if present; report at OUT/index.html)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--preset", default="quick", choices=PRESETS, help="run size (default: quick)")
    p.add_argument("--seeds", type=_seeds, default=(0,), help=f"3 | 0,1,2 | 0-2 (default: 0; at most {MAX_SEEDS})")
    p.add_argument("--workers", type=int, default=0, help="processes; 1 = in this process; 0 = auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads per worker; 0 = cores/workers")
    p.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                   help="stop a cell after this long and record a Timeout error (default: per preset; 0 = none)")
    p.add_argument("--models", nargs="+", default=(), metavar="GLOB", help="model name globs")
    p.add_argument("--tasks", nargs="+", default=(), metavar="GLOB", help="task name globs")
    p.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    p.add_argument("--overwrite", action="store_true",
                   help="re-run cells that are already done (and replace a run made with other settings)")
    p.add_argument("--rerun-failed", action="store_true", help="re-run cells recorded as errors")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--model", action="append", default=[], dest="user_models", metavar="MODULE:FACTORY",
                   help="your own model factory (repeatable); with no --models only these run")
    p.add_argument("--image-size", type=int, action="append", default=[], dest="image_sizes", metavar="N",
                   help="input side in px for erf, shape and cost (repeatable; default: the preset's sizes)")
    p.add_argument("--output", default=None, metavar="KEY", help="which part of a dict/tuple/.logits output to probe")
    p.add_argument("--layer", default=None, metavar="NAME", help="probe this submodule's output (ERF via a hook)")
    p.add_argument("--executor", default="local", help="local | dask | ray (default: local)")
    p.add_argument("--address", default=None, help="dask scheduler tcp://host:port, or ray auto | ray://host:port")
    p.add_argument("--gpus-per-cell", type=float, default=0.0, help="ray: GPUs per cell, e.g. 0.25; 0 = 1 on CUDA")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it may register probes, models, tasks)")


def build_parser(probes: tuple[str, ...] = ()) -> Parser:
    """The CLI; ``probes`` are the registered probe names that become subcommands."""
    from fcnprobe import __version__

    Parser.commands = ("all", *probes, "report", "compare", "list", "diagnose")
    parser = Parser(prog="python -m fcnprobe.run", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fcnprobe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in ("all", *probes):
        what = "every probe, then the report" if name == "all" else f"the {name} probe"
        p = sub.add_parser(name, help=f"run {what}",
                           epilog=f"example: python -m fcnprobe.run {name} --preset smoke --workers 1")
        _run_flags(p)
        _common(p)
    p = sub.add_parser("report", help="rebuild the HTML report (OUT/index.html) from stored records",
                       epilog="example: python -m fcnprobe.run report --out runs/latest")
    p.add_argument("--out", default="runs/latest")
    _common(p)
    p = sub.add_parser("compare", help="report the deltas between two runs",
                       epilog="example: python -m fcnprobe.run compare runs/a runs/b --out runs/a-vs-b")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--out", default=None, help="where to write the comparison (default: RUN_B/compare)")
    _common(p)
    _common(sub.add_parser("list", help="list models, tasks and probes", epilog="example: python -m fcnprobe.run list"))
    from fcnprobe.run_diagnose import add_parser

    add_parser(sub, _common)
    return parser


def load_plugins(argv: list[str]) -> list[str]:
    """Import the modules named by ``--plugin`` (anywhere in argv) and ``FCNPROBE_PLUGINS``."""
    import importlib

    names = [m for m in os.environ.get("FCNPROBE_PLUGINS", "").split(",") if m.strip()]
    names += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--plugin"]
    names += [a.split("=", 1)[1] for a in argv if a.startswith("--plugin=")]
    for name in names:
        try:
            importlib.import_module(name.strip())
        except Exception as exc:
            raise UsageError(f"cannot import plugin '{name}' ({type(exc).__name__}: {exc}); "
                             "is it on PYTHONPATH?") from None
    return names


def _probe_commands(argv: list[str]) -> tuple[str, ...]:
    """Registered probe names, unless the command needs no registry (report, compare)."""
    values = {i + 1 for i, a in enumerate(argv) if a == "--plugin"}
    first = next((a for i, a in enumerate(argv) if not a.startswith("-") and i not in values), None)
    if first in LIGHT_COMMANDS and "-h" not in argv and "--help" not in argv:
        return ()
    from fcnprobe.probes import probes_in_order

    return tuple(probes_in_order())


def _config(args: argparse.Namespace):
    from fcnprobe.config import RunConfig

    return RunConfig(out=args.out, device=args.device, preset=args.preset, seeds=tuple(args.seeds),
                     workers=args.workers, threads=args.threads, models=tuple(args.models),
                     tasks=tuple(args.tasks), overwrite=args.overwrite,
                     rerun_failed=args.rerun_failed, dry_run=args.dry_run, executor=args.executor,
                     address=args.address, gpus_per_cell=args.gpus_per_cell,
                     user_models=tuple(args.user_models), cell_timeout=args.cell_timeout,
                     image_sizes=tuple(args.image_sizes), output=args.output, layer=args.layer)


def _note(text: str) -> None:
    print(f"fcnprobe: {text}", file=sys.stderr)


def _check_user_models(paths: tuple[str, ...]) -> None:
    """Unimportable -> UsageError (exit 2); a factory the cells will reject -> one warning line."""
    from fcnprobe.user import factory_problem

    for path in paths:
        problem = factory_problem(path)
        if problem:
            _note(f"note: {problem}; its training cells will be error records")


def _report_failures(summary, cfg) -> None:
    """One line per user model with failed cells, and one for cells lost with their workers."""
    for model in cfg.user_models:
        errs = [e for m, e in summary.errors if m == model]
        if errs:
            _note(f"{model}: {len(errs)} cells failed; first: {errs[0]}")
    if summary.lost:
        _note(f"{len(summary.lost)} cells lost with their workers (first: {summary.lost[0]}); "
              "run the same command again to resume")


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
    for note in summary.notes:
        _note(note)
    lost = f"{len(summary.lost)} lost, " if summary.lost else ""
    print(f"{summary.ok} ok, {summary.failed} failed, {lost}{summary.skipped} already done -> {args.out}")
    _report_failures(summary, cfg)
    return EXIT_FAILED if summary.failed or summary.lost else EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    return _sweep([args.command], args)


def cmd_all(args: argparse.Namespace) -> int:
    from fcnprobe.probes import probes_in_order

    code = _sweep(probes_in_order(), args)
    if not args.dry_run:
        code = max(code, cmd_report(args))
    return code


def _existing_run(path: str) -> Path:
    """A run directory holding at least one cell record, or UsageError (creates nothing)."""
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"no run directory at {root}")
    if not any((root / "cells").glob("*.json")):
        raise UsageError(f"{root} holds no cell records; run a probe into it first")
    return root


def cmd_report(args: argparse.Namespace) -> int:
    from fcnprobe.report.build import build_report

    path = build_report(_existing_run(args.out))
    print(f"report: {path.resolve().as_uri()}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from fcnprobe.report.build import build_comparison
    from fcnprobe.results import RunStore, run_differences

    a, b = _existing_run(args.run_a), _existing_run(args.run_b)
    for line in run_differences(RunStore(a).read_manifest(), RunStore(b).read_manifest()):
        _note(f"warning: {line}")
    path = build_comparison(a, b, args.out)
    print(f"comparison: {path.resolve().as_uri()}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from fcnprobe.measure.receptive import UnknownReceptiveField
    from fcnprobe.models import MODELS, create_model, theoretical_receptive_field
    from fcnprobe.probes import probes_in_order
    from fcnprobe.tasks import TASKS

    print("models (params with a dense:4 head at 32x32; TRF in px, 'global' when unbounded):")
    for name in MODELS.names():
        native = MODELS.meta(name)["native"]
        try:
            m = create_model(name, head="dense:4" if "dense" in native else f"{native[0]}:4".replace("box:4", "box"))
        except ImportError as exc:  # a real layout without its optional dependency
            print(f"  {name:24s} heads={','.join(native):18s} unavailable: {exc}")
            continue
        try:
            trf = theoretical_receptive_field(m, 32) or "global"
        except UnknownReceptiveField as exc:  # an op the graph cannot place: said, never read as global
            trf = f"unknown ({exc})"
        print(f"  {name:24s} heads={','.join(native):18s} "
              f"params={sum(p.numel() for p in m.parameters()):>7d}  trf={trf}")
    print("tasks:", ", ".join(TASKS.names()) or "(none)")
    print("probes:", ", ".join(probes_in_order()) or "(none)")
    return EXIT_OK


def cmd_diagnose(args: argparse.Namespace) -> int:
    from fcnprobe.run_diagnose import cmd_diagnose as run

    return run(args)


HANDLERS = {"all": cmd_all, "report": cmd_report, "compare": cmd_compare, "list": cmd_list,
            "diagnose": cmd_diagnose}


def _fs_error(exc: OSError, argv: list[str]) -> int:
    """A file-system fault as one line: exit 1 when records are kept, else 2."""
    out = argv[argv.index("--out") + 1] if "--out" in argv[:-1] else "runs/latest"
    kept = len(list((Path(out) / "cells").glob("*.json"))) if Path(out).is_dir() else 0
    where = exc.filename or out
    tail = f"; {kept} records are kept in {out} and a re-run resumes" if kept else ""
    _note(f"error: cannot write {where}: {exc.strerror or exc}{tail}")
    return EXIT_FAILED if kept else EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m fcnprobe.run`` and the ``fcnprobe`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _one_line_warnings()
    try:
        load_plugins(argv)
        args = build_parser(_probe_commands(argv)).parse_args(argv)
        return HANDLERS.get(args.command, cmd_probe)(args)
    except (UsageError, RunDirBusy) as exc:
        _debug()
        _note(f"error: {exc}")
        return EXIT_USAGE
    except (SweepInterrupted, KeyboardInterrupt) as exc:
        _note(f"{exc or 'interrupted'}")
        return EXIT_INTERRUPTED
    except WorkerLost as exc:
        _note(f"error: {exc}")
        return EXIT_FAILED
    except OSError as exc:
        _debug()
        return _fs_error(exc, argv)


def _debug() -> None:
    """With FCNPROBE_DEBUG=1 the traceback of the exception being handled goes to stderr too."""
    if os.environ.get("FCNPROBE_DEBUG", "") not in ("", "0"):
        import traceback

        traceback.print_exc()


def _one_line_warnings() -> None:
    """Warnings (stale lock, rebuilt manifest, skipped records) as 'fcnprobe: warning: ...' lines."""
    import warnings

    warnings.formatwarning = lambda message, category, *a, **k: f"fcnprobe: warning: {message}\n"


if __name__ == "__main__":
    sys.exit(main())
