"""Cutting GeoTIFFs, COGs, UAV mosaics and plain images into georeferenced chips; the chip index in `tiles.index`."""
