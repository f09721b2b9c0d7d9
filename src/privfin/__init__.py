"""privfin: privacy-preserving computation for inclusive finance.

Each party runs in its own process; data crosses parties only through a
:class:`privfin.transport.Channel`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("privfin")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
