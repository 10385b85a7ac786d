"""AlexNet on Fashion-MNIST: freeze the convolutions, train the classifier, then optionally
fine-tune everything at a lower rate (the seed slides' guide).

    python examples/fashion_mnist.py [--folder DIR] [--limit 2000] [--fine-tune]

Needs the four IDX files (train-images-idx3-ubyte.gz, ...) in DIR, by default Keras's
cache ~/.keras/datasets/fashion-mnist (keras.datasets.fashion_mnist.load_data() puts
them there on a machine with network). 28x28 grayscale becomes 224x224 RGB inside the
tf.data pipeline.
"""

import argparse

from keras_alexnet import AlexNet
from keras_alexnet.datasets import FASHION_MNIST_CLASSES, fashion_mnist
from keras_alexnet.training import configure, fit
from keras_alexnet.transfer import apply_recipe

parser = argparse.ArgumentParser()
parser.add_argument("--folder", help="folder with the IDX files")
parser.add_argument("--limit", type=int, default=2000, help="training batches are cut to this many images (CPU)")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--fine-tune", action="store_true", help="then train all layers, convolutions at 1/10")
args = parser.parse_args()

configure(seed=0)
batch = 32
train_ds = fashion_mnist("train", folder=args.folder, batch_size=batch).take(args.limit // batch)
test_ds = fashion_mnist("test", folder=args.folder, batch_size=batch).take(args.limit // batch)
classes = len(FASHION_MNIST_CLASSES)

model = apply_recipe(AlexNet(weights="imagenet", include_top=False), "frozen-features", classes)
fit(model, train_ds, test_ds, epochs=args.epochs, run_dir="runs/fashion_mnist_frozen", verbose=2)
print(f"frozen convolutions: test accuracy {model.evaluate(test_ds, verbose=0, return_dict=True)['accuracy']:.4f}")
if args.fine_tune:
    model = apply_recipe(model, "fine-tune-all", classes, new_head=False)  # keep the trained classifier
    fit(model, train_ds, test_ds, epochs=args.epochs, run_dir="runs/fashion_mnist_finetune", verbose=2)
    print(f"fine-tuned: test accuracy {model.evaluate(test_ds, verbose=0, return_dict=True)['accuracy']:.4f}")
