"""Data side of symdpo: dataset readers, images, demonstration selection, SymDPO/SFT record builders.

See ``src/symdpo/data/README.md`` for the recipe and the record formats.
"""

from symdpo.data.errors import BadImageError, DataError

__all__ = ["BadImageError", "DataError"]
