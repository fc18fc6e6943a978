#!/usr/bin/env python3
"""Distinct photos for load runs, made from real ones.

A load run whose folder holds one photo measures the worst case of the duplicate
search: the simulator makes every upload unique by a JPEG comment, so all of them
share one pHash and every meeting is a near-duplicate of every earlier one. Field
phones photograph different meetings. This writes COUNT photos that look different
(each source photo turned or mirrored one of 8 ways, cropped to a random window of
55-100 % of its sides, brightness and contrast shifted a little), at the source's
pixel size, re-encoded at the quality that brings each near the source's byte size,
with the source's EXIF (GPS, time) kept.

usage: scripts/photo-variants.py SRC_DIR OUT_DIR COUNT [SEED]
needs: pip install Pillow
"""

import io
import pathlib
import random
import sys

from PIL import Image, ImageEnhance

TRANSPOSES = [
    None,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.ROTATE_180,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_270,
]


def encode(img, quality, exif):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif or b"")
    return buf.getvalue()


def near_size(img, target, exif, around=None):
    """The encoding whose size is nearest `target`, by bisection on quality (within
    `around` +- 5 when given: variants of one source need about the same quality,
    and an 8 MP encode is slow). Returns (bytes, quality)."""
    lo, hi = (30, 98) if around is None else (max(30, around - 5), min(98, around + 5))
    best = None
    while lo <= hi:
        q = (lo + hi) // 2
        data = encode(img, q, exif)
        if best is None or abs(len(data) - target) < abs(len(best[0]) - target):
            best = (data, q)
        if len(data) < target:
            lo = q + 1
        else:
            hi = q - 1
    return best


def main():
    src, out, count = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    sources = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not sources:
        sys.exit(f"no JPEG files in {src}")
    out.mkdir(parents=True, exist_ok=True)
    quality = {}
    for i in range(count):
        path = sources[i % len(sources)]
        target = path.stat().st_size
        with Image.open(path) as im:
            exif = im.info.get("exif")
            img = im.convert("RGB")
        w, h = img.size
        t = TRANSPOSES[(i // len(sources)) % len(TRANSPOSES)]
        if t is not None:
            img = img.transpose(t)
        cw, ch = img.size
        scale = rng.uniform(0.55, 1.0)
        bw, bh = max(16, int(cw * scale)), max(16, int(ch * scale))
        x, y = rng.randint(0, cw - bw), rng.randint(0, ch - bh)
        img = img.crop((x, y, x + bw, y + bh))
        # Back to the source's pixel count, in the variant's orientation.
        size = (w, h) if cw == w else (h, w)
        img = img.resize(size, Image.Resampling.BILINEAR)
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.85, 1.15))
        data, quality[path] = near_size(img, target, exif, quality.get(path))
        (out / f"v{i:05d}.jpg").write_bytes(data)


if __name__ == "__main__":
    main()
