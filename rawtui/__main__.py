"""`python -m rawtui` is the `rawtui` command."""

import sys

from rawtui.cli import main

sys.exit(main())
