"""`python -m photoindex` runs the CLI."""

from photoindex.cli import main

if __name__ == "__main__":
    main()
