"""photoindex's benchmark suite: `python -m benchmarks.run` writes benchmarks/out/report.{md,json}."""
