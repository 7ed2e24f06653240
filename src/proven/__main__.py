"""`python -m proven` is the `proven` command."""

import sys

from proven.cli import main

sys.exit(main())
