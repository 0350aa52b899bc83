"""The ``datagen`` command line. Each subcommand lives in its own module with
``register(subparsers)``; ``main`` wires them."""
