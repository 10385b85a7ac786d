"""The chain of exceptions behind an error (``_utils/errors.py``), which the CLI, Ray's refusals and the model
readers walk."""

from keras_alexnet._utils.errors import chain, root_cause


def _raised(inner, outer):
    try:
        try:
            raise inner
        except BaseException:
            raise outer from None  # as Keras's traceback filter re-raises: the context kept, no cause
    except BaseException as error:
        return error


def test_the_chain_follows_causes_and_contexts_and_ends_on_a_loop():
    error = _raised(KeyboardInterrupt(), SystemError("returned a result with an exception set"))
    assert [type(link) for link in chain(error)] == [SystemError, KeyboardInterrupt]
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first  # set by hand: a loop
    assert len(list(chain(first))) == 20
    assert root_cause(_raised(OSError("disk\nsecond line"), RuntimeError("outer"))) == "OSError: disk"
    assert root_cause(ValueError("x" * 300)) == "ValueError: " + "x" * 200
