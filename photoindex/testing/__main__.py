"""`python -m photoindex.testing make-models OUT ...`: write a generated bundle and print its path."""

from __future__ import annotations

import argparse
from pathlib import Path

from photoindex.testing.models import make_bundle


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and build the requested bundle; prints only the bundle's path."""
    parser = argparse.ArgumentParser(prog="python -m photoindex.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser("make-models", help="write a generated model bundle folder")
    models.add_argument("out", type=Path, help="the bundle folder to write")
    models.add_argument("--kind", choices=["toy", "vit-b32"], default="toy")
    models.add_argument("--tokenizer", choices=["clip-bpe", "bert-chinese"], default="clip-bpe")
    models.add_argument("--npu-layout", choices=["nhwc-uint8", "nchw-float32"], default=None)
    models.add_argument("--flavour", choices=["axera", "open_clip"], default="axera")
    models.add_argument("--name", default=None, help="the bundle's name in its manifest")
    args = parser.parse_args(argv)
    path = make_bundle(
        args.out,
        args.kind,
        tokenizer=args.tokenizer,
        npu_layout=args.npu_layout,
        name=args.name,
        flavour=args.flavour,
    )
    print(path)


if __name__ == "__main__":
    main()
