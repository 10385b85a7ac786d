"""The package's figures draw text literally, tick labels included."""

from keras_alexnet._utils.plotting import log_x_axis, pyplot


def test_a_log_axis_labels_its_ticks_in_plain_text(tmp_path):
    """lr_find's plot showed `$\\mathdefault{10^{-5}}$` under its axis: the literal text the package draws
    (no mathtext, for class names from files) printed matplotlib's mathtext log labels as written."""
    plt = pyplot()
    figure, axis = plt.subplots()
    axis.plot([1e-7, 1e-4, 10], [1, 2, 3])
    log_x_axis(axis)
    figure.savefig(tmp_path / "plot.png")
    labels = [label.get_text() for label in axis.get_xticklabels() if label.get_text()]
    plt.close(figure)
    assert "1e-04" in labels and not any("$" in label or "mathdefault" in label for label in labels), labels
