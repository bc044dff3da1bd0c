"""``python -m trainplan ...``: the same command line as ``trainplan ...``."""

import sys

from trainplan.experiments.cli import main

if __name__ == "__main__":
    sys.exit(main())
