"""The data sets shipped with neuromem, one file each; importing a file registers its entry.

Adding a data set: write `neuromem/data/sets/<name>.py` (an `EventDataset`
subclass under `@register_dataset`, see `neuromem.data.base`) and import it here.
"""

from neuromem.data.sets import shd  # noqa: F401  (registers "shd")
from neuromem.data.sets import nmnist  # noqa: F401  (registers "nmnist")
from neuromem.data.sets import ssc  # noqa: F401  (registers "ssc")
