"""Synthetic stand-ins, one generator per data set, each writing its data set's real on-disk format.

The generators are plain functions `write(root, seed, config) -> counts`; each
data set's registry entry (`neuromem.data.sets`) lists the ones it offers, and
`neuromem.data.embedded.synthesize` runs them and writes the marker.
"""
