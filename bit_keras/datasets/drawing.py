"""NumPy drawing of the synthetic objects: shapes, textures, colours, background clutter.

Every function works on float32 pixel grids and is deterministic given its random
generator, so the TFDS builder and ``bit_keras.datasets.generate`` draw identical images.
Shapes are signed distance functions in the object's own rotated and scaled frame (unit
radius); textures are two-tone patterns in the same frame, so they turn and scale with the
object. Edges are anti-aliased over one pixel.
"""

import colorsys

import numpy as np

SHAPES = ("circle", "square", "triangle", "hexagon", "star", "cross", "ring", "crescent")
TEXTURES = ("solid", "striped", "checkered", "dotted", "ringed", "outlined")
# Hue families (hue in [0, 1)); each image jitters hue, saturation and value within its family.
COLOURS = {"red": 0.0, "yellow": 0.14, "green": 0.33, "blue": 0.61}
HUE_JITTER = 0.035
# The second tone of a textured object: the object colour darkened to this fraction.
DARK_TONE = 0.28
# Texture period in object radii: about 5 to 11 pixels at 64x64, readable but not trivial.
PERIOD = 0.46
PIXEL_NOISE = 0.02


def _polygon(u, v, sides, apothem):
    angles = np.pi / 2 + 2 * np.pi * np.arange(sides) / sides
    return np.max([u * np.cos(a) + v * np.sin(a) for a in angles], axis=0) - apothem


def shape_distance(shape, u, v):
    """Signed distance (in object radii, negative inside) of ``shape`` at frame coords u, v."""
    rho = np.sqrt(u * u + v * v)
    if shape == "circle":
        return rho - 0.9
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.72
    if shape == "triangle":
        return _polygon(u, v, 3, 0.5) * 1.6  # stretched so the edge is about one pixel wide
    if shape == "hexagon":
        return _polygon(u, v, 6, 0.84)
    if shape == "star":
        tooth = np.abs((np.arctan2(u, v) * 5 / (2 * np.pi)) % 1.0 - 0.5) * 2  # 1 at the points
        return (rho - (0.42 + 0.58 * tooth)) * 0.6
    if shape == "cross":
        bar = lambda a, b: np.maximum(np.abs(a) - 0.3, np.abs(b) - 0.92)  # noqa: E731
        return np.minimum(bar(u, v), bar(v, u))
    if shape == "ring":
        return np.abs(rho - 0.66) - 0.27
    if shape == "crescent":
        return np.maximum(rho - 0.92, 0.74 - np.sqrt(np.square(u - 0.5) + v * v))
    raise ValueError(f"shape must be one of {SHAPES}. Received: shape={shape!r}")


def _smooth(signed, scale):
    """0..1 step at ``signed == 0``, one pixel wide when ``signed * scale`` is in pixels."""
    return np.clip(0.5 + signed * scale, 0.0, 1.0)


def texture_pattern(texture, u, v, distance, radius_px):
    """1 where the object shows its colour, 0 where it shows the dark tone, smooth between."""
    period_px = PERIOD * radius_px
    wave = period_px / (2 * np.pi)  # turns sin(2 pi x / period) into a one-pixel-wide step
    k = 2 * np.pi / PERIOD
    if texture == "solid":
        return np.ones_like(u)
    if texture == "striped":
        return _smooth(np.sin(k * u), wave)
    if texture == "checkered":
        return _smooth(np.sin(k * u) * np.sin(k * v), wave)
    if texture == "dotted":
        du = (u / PERIOD) % 1.0 - 0.5
        dv = (v / PERIOD) % 1.0 - 0.5
        return _smooth(np.sqrt(du * du + dv * dv) - 0.28, period_px)
    if texture == "ringed":
        return _smooth(np.sin(k * np.sqrt(u * u + v * v)), wave)
    if texture == "outlined":
        return _smooth(distance + 0.24, radius_px)
    raise ValueError(f"texture must be one of {TEXTURES}. Received: texture={texture!r}")


def object_colour(colour, rng):
    """An RGB colour of the hue family ``colour``, jittered."""
    hue = (COLOURS[colour] + rng.uniform(-HUE_JITTER, HUE_JITTER)) % 1.0
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0)),
                    np.float32)


def _grey_colour(rng):
    hsv = rng.uniform(0, 1), rng.uniform(0, 0.35), rng.uniform(0.3, 0.9)
    return np.array(colorsys.hsv_to_rgb(*hsv), np.float32)


def _any_colour(rng):
    return rng.uniform(0, 1, 3).astype(np.float32)


def _window(size, x0, x1, y0, y1):
    """Pixel slices covering [x0, x1] x [y0, y1], clipped to the image (may be empty)."""
    xs = slice(max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, size))
    ys = slice(max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, size))
    return ys, xs


def _paint(canvas, window, alpha, colour):
    """Alpha-blends ``colour`` into ``canvas[window]`` (in place)."""
    part = canvas[window]
    part += alpha[..., None] * (colour - part)


def _grid(window):
    """Pixel-centre coordinates of a window: a row ``xx`` [1, w] and a column ``yy`` [h, 1]."""
    ys, xs = window
    xx = np.arange(xs.start, xs.stop, dtype=np.float32)[None, :] + np.float32(0.5)
    yy = np.arange(ys.start, ys.stop, dtype=np.float32)[:, None] + np.float32(0.5)
    return xx, yy


def draw_background(size, rng):
    """A two-colour linear gradient with clutter: thin lines and small blobs of any colour."""
    xx, yy = _grid((slice(0, size), slice(0, size)))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (((np.cos(angle) * xx + np.sin(angle) * yy) / size + 1) / 2)[..., None]
    canvas = (1 - ramp) * _grey_colour(rng) + ramp * _grey_colour(rng)
    for _ in range(rng.integers(1, 5)):  # line segments, 1 to 2 pixels wide
        x0, y0 = rng.uniform(0, size, 2)
        length, angle = rng.uniform(0.2, 0.7) * size, rng.uniform(0, 2 * np.pi)
        dx, dy = length * np.cos(angle), length * np.sin(angle)
        half_width = rng.uniform(0.5, 1.0)
        window = _window(size, min(x0, x0 + dx) - 2, max(x0, x0 + dx) + 2,
                         min(y0, y0 + dy) - 2, max(y0, y0 + dy) + 2)
        px, py = _grid(window)
        px, py = px - np.float32(x0), py - np.float32(y0)
        t = np.clip((px * dx + py * dy) / (length * length), 0, 1).astype(np.float32)
        dist = np.sqrt(np.square(px - t * dx) + np.square(py - t * dy))
        _paint(canvas, window, _smooth(half_width - dist, 1.0), _any_colour(rng))
    for _ in range(rng.integers(1, 5)):  # blobs much smaller than any object
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(0.02, 0.06) * size
        window = _window(size, cx - r - 2, cx + r + 2, cy - r - 2, cy + r + 2)
        px, py = _grid(window)
        dist = np.sqrt(np.square(px - np.float32(cx)) + np.square(py - np.float32(cy))) - r
        _paint(canvas, window, _smooth(-dist, 1.0), _any_colour(rng))
    return canvas


def draw(shape, texture, colour, size, rng):
    """One image (float32 HxWx3 in [0, 1]) of a ``colour`` ``texture`` ``shape`` on clutter.

    The object has a random radius (18% to 36% of the side), position (mostly inside the
    image), rotation and texture phase; pixel noise is added at the end.
    """
    canvas = draw_background(size, rng)
    radius = rng.uniform(0.18, 0.36) * size
    cx, cy = rng.uniform(radius * 0.8, size - radius * 0.8, 2)
    angle = rng.uniform(0, 2 * np.pi)
    du, dv = rng.uniform(0, PERIOD, 2)  # texture phase
    rgb = object_colour(colour, rng)
    # Every shape fits in 1.05 object radii (the square's corners reach 1.02).
    reach = 1.05 * radius + 2
    window = _window(size, cx - reach, cx + reach, cy - reach, cy + reach)
    xx, yy = _grid(window)
    c, s = np.float32(np.cos(angle) / radius), np.float32(np.sin(angle) / radius)
    xx, yy = xx - np.float32(cx), yy - np.float32(cy)
    u, v = c * xx + s * yy, c * yy - s * xx
    distance = shape_distance(shape, u, v)
    pattern = texture_pattern(texture, u + np.float32(du), v + np.float32(dv), distance,
                              np.float32(radius))[..., None]
    fill = rgb * (DARK_TONE + (1 - DARK_TONE) * pattern)
    _paint(canvas, window, _smooth(-distance, np.float32(radius)), fill)
    canvas += PIXEL_NOISE * rng.standard_normal(canvas.shape, dtype=np.float32)
    return np.clip(canvas, 0.0, 1.0)
