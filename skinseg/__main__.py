"""`python -m skinseg COMMAND [ARGS]`: the `skinseg` command."""

from skinseg.commands import main

raise SystemExit(main())
