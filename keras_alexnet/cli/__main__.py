"""``python -m keras_alexnet.cli``: the ``keras-alexnet`` command."""

import sys

from keras_alexnet.cli import console

if __name__ == "__main__":  # imported (a test imports every module), it runs nothing
    sys.exit(console())
