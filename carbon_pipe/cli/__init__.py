"""The `carbon-pipe` command: thin commands (parse, call one library function, print); heavy imports inside them."""

# Importing a module registers its commands, in this order in --help: the pipeline's first.
# isort: off
from . import stages  # noqa: F401
from . import runs  # noqa: F401
from . import backtests  # noqa: F401
from . import project  # noqa: F401
from . import queue  # noqa: F401
# isort: on
from .common import app

__all__ = ["app"]
