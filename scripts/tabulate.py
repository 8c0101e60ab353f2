#!/usr/bin/python3
"""Command-line entry point of bench/tabulate.py (its --help says what it does)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
from tabulate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
