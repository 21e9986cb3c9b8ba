"""One module per ``backover`` sub-command; each defines ``register(subparsers)``.

The command line finds them here, so adding a command never edits a shared list. A module's
``register`` adds its parser with ``set_defaults(run=function)``; ``run(args) -> int`` builds a
typed config and calls the job's function (the job's logic lives outside this package).
"""
