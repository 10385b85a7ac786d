"""Run a function right after Keras is imported, whoever imports it.

``import keras_alexnet`` must not load TensorFlow (the CLI's parser and the plain tables
answer without it), yet ``keras.models.load_model`` must find the package's registered
classes. Keras only imports the modules of its own packages when it deserializes, so the
package registers its classes when Keras loads: at once if Keras is loaded already, else
from this one-shot import hook, which wraps the loader of the ``keras`` module.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings


class _AfterKerasLoads(importlib.abc.MetaPathFinder):
    def __init__(self, callback):
        self.callback = callback

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        _remove(self)  # one shot; and the real finders answer the look-up below
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        load = spec.loader.exec_module
        callback = self.callback

        def exec_module(module):
            load(module)
            _call(callback)

        spec.loader.exec_module = exec_module
        return spec


def _remove(finder):
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)


def _call(callback):
    try:
        callback()
    except Exception as error:  # never break the user's `import keras`
        warnings.warn(f"keras_alexnet could not register its Keras classes: {error!r}", RuntimeWarning, stacklevel=2)


def after_keras_loads(callback):
    """Call ``callback()`` once Keras is imported (now, if it is already)."""
    if "keras" in sys.modules:
        _call(callback)
        return
    if not any(isinstance(finder, _AfterKerasLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasLoads(callback))
