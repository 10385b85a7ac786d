"""``python -m keras_alexnet.cli``: the ``keras-alexnet`` command."""

import sys

from keras_alexnet.cli import console

sys.exit(console())
