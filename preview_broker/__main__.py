import sys

from preview_broker.cli import main

sys.exit(main())
