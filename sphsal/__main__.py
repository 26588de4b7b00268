import sys

from sphsal.cli import main

sys.exit(main())
