"""`python -m photoindex.testing make-models OUT ...` / `make-photos OUT`: generated bundles and photo folders."""

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
    photos = commands.add_parser("make-photos", help="write a nested folder of generated coloured photos")
    photos.add_argument("out", type=Path, help="the folder to fill")
    photos.add_argument("--count", type=int, default=60)
    photos.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "make-photos":
        from photoindex.testing.photos import make_photo_tree

        make_photo_tree(args.out, args.count, seed=args.seed)
        print(args.out)
        return
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
