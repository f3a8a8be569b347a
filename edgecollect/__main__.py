import sys

from edgecollect.cli import main

sys.exit(main())
