"""`python -m rawtui` is the `rawtui` command."""

import sys

from .cli import main

sys.exit(main())
