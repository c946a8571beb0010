import sys

from minios.cli import main

sys.exit(main())
