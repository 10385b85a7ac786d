"""``TrainingOptions`` where ``training`` users find it; the schema itself is ``keras_alexnet.options``
(outside this package, so the command line reads it without importing TensorFlow)."""

from keras_alexnet.options import AUTO, DEFAULT_CACHE_MEMORY_LIMIT, AutoBudget, TrainingOptions

__all__ = ["AUTO", "DEFAULT_CACHE_MEMORY_LIMIT", "AutoBudget", "TrainingOptions"]
