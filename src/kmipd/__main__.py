import sys

from kmipd.cli.main import main

sys.exit(main())
