"""``python -m gateway``: the ``instpages`` command line (:mod:`gateway.cli`)."""
import sys

from gateway.cli import main

sys.exit(main())
