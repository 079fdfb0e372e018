"""The built-in demo pool (used when `--pool` is not given): real photos plus synthetic scenes.

Photos come from scikit-image (`skimage.data`, shipped in the wheel, no download): each has a
hand-written question whose decisive region is the object's pixels, found by a hue threshold
inside a hand-drawn box (e.g. the red paint of the motorcycle), so the classical editor recolours
exactly the object the question is about. Scenes come from `scene.py`: `families` base scenes,
each with one sibling that differs by a single graph edit, so near-identical pairs with different
exact answers exist in the pool for retrieval mining.
"""

from __future__ import annotations

import colorsys
import random

import numpy as np

from ctxdata._deps import check
from ctxdata.vision import scene as sc
from ctxdata.vision.pool import Pool

# (image id, loader, question, answer, type, box [x0, y0, x1, y1], hue range in degrees or None)
PHOTOS = (
    ("skimage/motorcycle_left.png", "stereo_motorcycle", "What colour is the motorcycle?", "red", "color", [90, 130, 720, 420], (340, 20)),
    ("skimage/astronaut.png", "astronaut", "What colour is the astronaut's suit?", "orange", "color", [15, 250, 370, 512], (5, 35)),
    ("skimage/coffee.png", "coffee", "What colour are the cup and saucer?", "red", "color", [70, 15, 485, 395], (340, 14)),
    ("skimage/chelsea.png", "chelsea", "What colour are the cat's eyes?", "green", "color", [130, 80, 350, 170], (45, 110)),
    ("skimage/rocket.png", "rocket", "How many rockets are on the launch pad?", "1", "count", [300, 125, 345, 405], None),
    ("skimage/coffee.png", "coffee", "Is there a spoon on the saucer?", "yes", "presence", [322, 62, 428, 328], None),
)


def _load_photo(name: str):
    import skimage.data as data
    from PIL import Image

    arr = getattr(data, name)()
    if name == "stereo_motorcycle":
        arr = arr[0]  # the left view
    return Image.fromarray(arr).convert("RGB")


def hue_mask(image, box: list[int], hue: tuple[float, float], *, min_sat: float = 0.35, min_val: float = 0.15):
    """Mask image (L) of pixels inside `box` whose hue lies in `hue` (degrees, may wrap past 360)."""
    from PIL import Image

    arr = np.asarray(image, dtype=np.float32) / 255.0
    to_hsv = np.vectorize(colorsys.rgb_to_hsv, otypes=[np.float32] * 3)
    x0, y0, x1, y1 = box
    h, s, v = to_hsv(arr[y0:y1, x0:x1, 0], arr[y0:y1, x0:x1, 1], arr[y0:y1, x0:x1, 2])
    deg = h * 360.0
    lo, hi = hue
    in_hue = (deg >= lo) | (deg <= hi) if lo > hi else (deg >= lo) & (deg <= hi)
    mask = np.zeros(arr.shape[:2], dtype=np.uint8)
    mask[y0:y1, x0:x1] = (in_hue & (s >= min_sat) & (v >= min_val)) * 255
    return Image.fromarray(mask, "L")


def add_photos(pool: Pool) -> None:
    check("skimage")
    for image_id, loader, question, answer, qtype, box, hue in PHOTOS:
        image = pool.images.get(image_id) or _load_photo(loader)
        region = hue_mask(image, box, hue) if hue else box
        pool.add(image_id, image, question=question, answer=answer, qtype=qtype, region=region, source=f"demo:{image_id}")


def add_scenes(pool: Pool, *, families: int, seed: int) -> None:
    """`families` random scenes, each plus one sibling differing by one graph edit."""
    rng = random.Random(seed)
    for f in range(families):
        base = sc.random_scene(rng)
        ask = rng.choice([q["scene"]["ask"] for q in sc.scene_questions(base)])
        op = {"color": "recolor", "count": rng.choice(["remove", "duplicate"]), "presence": "remove"}[ask["ask"]]
        params = {"target": rng.choice([c for c in sc.SCENE_COLORS if c != sc.answer(base, ask)])} if op == "recolor" else {}
        edited = sc.apply_edit(base, ask, op, params, rng)
        graphs = [base] + ([edited[0]] if edited else [])
        for v, graph in enumerate(graphs):
            image_id = f"scene/{f:03d}-{v}.png"
            image = sc.render(graph)
            for row in sc.scene_questions(graph):
                pool.add(image_id, image, question=row["question"], answer=row["answer"], qtype=row["type"],
                         region=row["region"], scene=row["scene"], source=f"demo:{image_id}")


def demo_pool(*, seed: int = 0, families: int = 10, photos: bool = True) -> Pool:
    """The demo pool: scikit-image photos (when installed) plus `families` scene families."""
    pool = Pool(name="demo")
    if photos:
        add_photos(pool)
    add_scenes(pool, families=families, seed=seed)
    return pool
