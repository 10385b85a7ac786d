"""See what the network sees: train on the shipped photos, then Grad-CAM, occlusion, activations,
conv1 filters and the HTML report (runs/see/report.html).

python examples/see_what_it_learned.py      # about a minute on 2 cores
"""

from pathlib import Path

from keras_alexnet import train
from keras_alexnet.explain import explain
from keras_alexnet.explain.interpretation import Interpretation

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "cats_vs_dogs"

result = train(
    PHOTOS / "train",
    val=PHOTOS / "test",
    recipe="frozen-features",
    head="compact",
    cache_activations=True,
    run_dir="runs/see",
    overwrite=True,
    verbose=2,
)
photos = sorted((PHOTOS / "test" / "cats").iterdir())[:2] + sorted((PHOTOS / "test" / "dogs").iterdir())[:2]
for method in ("gradcam", "occlusion", "activations", "filters"):
    written, _ = explain(result.model, photos, method=method, out="runs/see/explained")
    print(method, [str(path) for path in written])
interpretation = Interpretation.from_folder(result.model, PHOTOS / "test")
print("most confused:", interpretation.most_confused())
print("top losses:", interpretation.plot_top_losses("runs/see/explained/top_losses.png", k=6))
