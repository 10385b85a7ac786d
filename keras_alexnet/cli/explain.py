"""``keras-alexnet explain``: Grad-CAM, occlusion, activations or filters as PNGs."""

from __future__ import annotations

import sys

from keras_alexnet._utils.choices import (
    EXPLAIN_METHODS,
)
from keras_alexnet._utils.text import printable


def run(args):
    from keras_alexnet.explain import explain
    from keras_alexnet.model import AlexNet, load_model

    if args.method != "filters" and not args.images:
        raise ValueError(f"--method {args.method} explains images: give image files or folders.")
    if args.model == "imagenet":
        needs_classifier = args.method in ("gradcam", "occlusion")
        model = AlexNet(weights="imagenet", include_top=needs_classifier)
    else:
        model = load_model(args.model)
    written, skipped = explain(model, args.images, args.method, args.layer, args.target, args.out)
    for path, reason in skipped:
        print(f"skipped {printable(path)}: {reason}", file=sys.stderr)
    print(f"{len(written)} picture(s) in {args.out}/" + (f"; {len(skipped)} image(s) skipped" if skipped else ""))
    return 0


def add(command):
    p = command(NAME, "show what the model sees: Grad-CAM, occlusion, activations or conv1 filters, as PNGs", run)
    p.add_argument("images", nargs="*", help="image files or folders (not needed for --method filters)")
    p.add_argument(
        "--model",
        default="imagenet",
        help="a trained .keras model, or 'imagenet' (Grad-CAM/occlusion need `keras-alexnet convert` first)",
    )
    p.add_argument("--method", default="gradcam", choices=EXPLAIN_METHODS)
    p.add_argument("--layer", help="gradcam: a convolution (default conv5); activations: any layer (default conv2)")
    p.add_argument("--class", dest="target", help="explain this class (name or index) instead of the predicted one")
    p.add_argument("--out", default="explain", help="folder for the PNGs (default explain/)")


NAME = "explain"
EXAMPLE = "keras-alexnet explain --model runs/pets/model.keras photo1.jpg photos/ --method gradcam --out explained"
