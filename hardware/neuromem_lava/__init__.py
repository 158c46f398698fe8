"""neuromem's Loihi 2 backend: runs networks exported by `neuromem export --to lava` on Lava.

Runs in its own environment (Python 3.10, lava-nc 0.10.0, numpy < 2); neuromem
talks to it only through files and `python -m neuromem_lava`.
"""

__version__ = "0.1.0"
