import sys

from defectscope.cli import main

sys.exit(main())
