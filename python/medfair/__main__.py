import sys

from medfair.cli import main

sys.exit(main())
