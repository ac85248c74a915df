#!/usr/bin/env python
"""Django's command-line utility, with configuration and connection errors reported on one line."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "honua.settings.development")
    from honua.cli import run

    sys.exit(run(sys.argv))


if __name__ == "__main__":
    main()
