"""Cutting GeoTIFFs, COGs, UAV mosaics and plain images into georeferenced chips, and the chip index."""
