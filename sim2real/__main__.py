"""``python -m sim2real`` = the ``sim2real`` command."""
import sys

from sim2real.cli import main

sys.exit(main())
