"""`python -m tvmdeploy.tools.cli`: the `tvmdeploy` command."""

import sys

from tvmdeploy.tools.cli.main import main

sys.exit(main())
