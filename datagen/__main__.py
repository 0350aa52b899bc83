import sys

from datagen.cli.main import main

sys.exit(main())
