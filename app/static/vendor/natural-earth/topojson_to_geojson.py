"""Convert a world-atlas TopoJSON object to the GeoJSON the map's basemap loads (run once, when refreshing).

    python topojson_to_geojson.py node_modules/world-atlas/countries-50m.json countries > countries-50m.geojson

TopoJSON stores shared arcs, quantized and delta-encoded; each polygon ring here becomes its arcs' points
in order (a negative index is the reversed arc ``~i``), rounded to ``DIGITS`` decimals (~100 m).
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: decimals kept: 0.001 degree is about 110 m, finer than the 1:50m scale's ~0.5 mm on paper
DIGITS = 3


def decode_arcs(topology: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """The topology's arcs as absolute (lon, lat) points (un-quantized when it has a transform)."""
    transform = topology.get("transform")
    (sx, sy), (tx, ty) = (transform["scale"], transform["translate"]) if transform else ((1, 1), (0, 0))
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = (x + dx, y + dy) if transform else (dx, dy)
            points.append((round(x * sx + tx, DIGITS), round(y * sy + ty, DIGITS)))
        arcs.append(points)
    return arcs


def ring(indexes: list[int], arcs: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """One closed ring from its arc indexes; consecutive arcs share an end point, kept once."""
    points: list[tuple[float, float]] = []
    for index in indexes:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc[1:] if points else arc)
    return points


def to_geojson(topology: dict[str, Any], name: str) -> dict[str, Any]:
    """The geometry collection ``name`` of ``topology`` as a GeoJSON FeatureCollection."""
    arcs = decode_arcs(topology)
    features = []
    for geometry in topology["objects"][name]["geometries"]:
        kind = geometry["type"]
        if kind == "Polygon":
            coordinates: Any = [ring(r, arcs) for r in geometry["arcs"]]
        elif kind == "MultiPolygon":
            coordinates = [[ring(r, arcs) for r in polygon] for polygon in geometry["arcs"]]
        else:
            continue
        features.append(
            {
                "type": "Feature",
                "properties": {"name": geometry.get("properties", {}).get("name", "")},
                "geometry": {"type": kind, "coordinates": coordinates},
            }
        )
    return {"type": "FeatureCollection", "features": features}


if __name__ == "__main__":
    with open(sys.argv[1]) as source:
        json.dump(to_geojson(json.load(source), sys.argv[2]), sys.stdout, separators=(",", ":"))
