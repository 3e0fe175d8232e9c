import sys

from crosscheck.cli.main import main

sys.exit(main())
