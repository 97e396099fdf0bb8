"""``python -m fcnprobe.run diagnose MODEL``: the parser and handler of the diagnose subcommand.

The measurement is ``fcnprobe.diagnose``; this module only reads flags, builds
the model (a zoo name, or ``module.path:factory``, plain builders included) and
writes ``OUT/diagnosis.html`` and ``OUT/diagnosis.json``. Bad input is a
``UsageError`` (one line, exit 2 in ``fcnprobe.run.main``).

Example::

    python -m fcnprobe.run diagnose fcnprobe.models.hf:segformer_b0 --image-size 256 --output logits
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from fcnprobe.errors import UsageError


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``diagnose`` subcommand's parser; ``common`` adds the flags every subcommand shares."""
    p = sub.add_parser("diagnose", help="TRF, ERF, output shape and cost of one model over image sizes",
                       epilog="example: python -m fcnprobe.run diagnose fcn --image-size 64 --image-size 128")
    p.add_argument("model", help="a zoo name or module.path:factory (plain builders welcome)")
    p.add_argument("--image-size", type=int, action="append", default=[], dest="image_sizes", metavar="N",
                   help="input side in px (repeatable; default 224)")
    p.add_argument("--output", default=None, metavar="KEY", help="which part of a dict/tuple/.logits output")
    p.add_argument("--layer", default=None, metavar="NAME", help="probe this submodule's output instead")
    p.add_argument("--weights", default=None, metavar="FILE", help="a local state_dict (loaded weights_only)")
    p.add_argument("--out", default="runs/diagnose", help="writes OUT/diagnosis.html and OUT/diagnosis.json")
    common(p)


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Build the model (no head for plain builders), measure it and write the two files."""
    from fcnprobe.config import MAX_IMAGE_SIZE
    from fcnprobe.diagnose import build_for_diagnosis, diagnose, write_diagnosis

    sizes = tuple(dict.fromkeys(args.image_sizes or [224]))
    if any(not 1 <= s <= MAX_IMAGE_SIZE for s in sizes):
        raise UsageError(f"--image-size must be between 1 and {MAX_IMAGE_SIZE} px")
    if args.weights and not Path(args.weights).is_file():
        raise UsageError(f"no weights file at {args.weights}")
    model = build_for_diagnosis(args.model, sizes[0])
    result = diagnose(model, sizes, output=args.output, layer=args.layer, weights=args.weights)
    result["model"] = args.model
    js, html = write_diagnosis(result, args.out)
    for line in result["findings"]:
        print(f"- {line}")
    print(f"diagnosis: {html.resolve().as_uri()} ({js.name} beside it)")
    return 0


