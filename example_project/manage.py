#!/usr/bin/env python
"""Django's command-line utility for the django-cachekit example project."""

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        import django_cachekit  # noqa: F401
    except ImportError:
        # Not installed (pip install -e .): use the checkout this project lives in.
        sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Is it installed and available on your PYTHONPATH? "
            "Did you forget to activate a virtual environment? (scripts/example.sh makes one.)"
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
