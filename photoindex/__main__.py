"""`python -m photoindex` runs the CLI."""

from photoindex.cli.app import main

if __name__ == "__main__":
    main()
