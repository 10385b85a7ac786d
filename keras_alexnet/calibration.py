"""Calibration: one temperature fitted on the validation images, and how honest probabilities are.

Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017) divides
the logits by one number T > 0 fitted to minimise the negative log-likelihood of held-out
labels. T > 1 softens an overconfident model; the order of the classes, hence every
prediction, stays as it is. ``train`` fits T at the end of a run and keeps it in the model
(``layers.Temperature``), so every export carries it.

The scores: expected calibration error (15 equal-width confidence bins, as Guo et al.),
negative log-likelihood and the Brier score (the squared distance between the probability
vector and the one-hot label, summed over classes, averaged over images).
"""

from __future__ import annotations

import dataclasses

import numpy as np

ECE_BINS = 15
# T is searched in [1/20, 20]: a wider range only fits degenerate validation sets.
TEMPERATURE_RANGE = (0.05, 20.0)
_TINY = 1e-30  # float32 probabilities underflow to 0 past a logit gap of ~100; log stays finite


def _log_probabilities(probabilities):
    return np.log(np.maximum(np.asarray(probabilities, np.float64), _TINY))


def tempered(probabilities, temperature):
    """``softmax(log p / T)``: the probabilities the logits divided by ``temperature`` give.

    Exact for softmax outputs, since ``log softmax(z) = z - logsumexp(z)`` and the softmax
    ignores a constant shift. ``temperature`` 1 returns ``probabilities`` (in float64).
    """
    scaled = _log_probabilities(probabilities) / float(temperature)
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities, labels):
    """The mean of ``-log p[label]`` (cross-entropy, in nats)."""
    labels = np.asarray(labels, np.int64)
    chosen = np.asarray(probabilities, np.float64)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(chosen, _TINY))))


def brier_score(probabilities, labels):
    """The mean over images of ``sum_k (p_k - [k == label])**2`` (0 perfect, 2 worst)."""
    probabilities = np.asarray(probabilities, np.float64)
    onehot = np.zeros_like(probabilities)
    onehot[np.arange(len(labels)), np.asarray(labels, np.int64)] = 1.0
    return float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))


def _bin_index(confidence, bins):
    """Bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 cannot occur."""
    return np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)


def reliability_bins(probabilities, labels, bins=ECE_BINS):
    """Per equal-width confidence bin: (count, mean confidence, accuracy); empty bins have count 0."""
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    index = _bin_index(confidence, bins)
    counts = np.bincount(index, minlength=bins)
    sums = np.bincount(index, weights=confidence, minlength=bins)
    hits = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    mean_confidence = np.divide(sums, counts, out=np.zeros(bins), where=counts > 0)
    accuracy = np.divide(hits, counts, out=np.zeros(bins), where=counts > 0)
    return counts, mean_confidence, accuracy


def expected_calibration_error(probabilities, labels, bins=ECE_BINS):
    """Sum over bins of (share of images) x |accuracy - mean confidence| (0 perfectly calibrated)."""
    counts, confidence, accuracy = reliability_bins(probabilities, labels, bins)
    return float(np.sum(counts * np.abs(accuracy - confidence)) / max(counts.sum(), 1))


def ece_floor(probabilities, draws=200, seed=0):
    """The ECE a perfectly calibrated model with these probabilities shows on as many images.

    Each draw gives every image a label drawn from its own probabilities (so the confidences
    are exactly right) and measures the ECE; the mean over ``draws`` is what sampling alone
    adds. An ECE near it cannot be told from perfect calibration: about 0.03 on 200 images
    of a 93% accurate model, 0.01 on 1,600 (benchmarks/CONFIDENCE.md).
    """
    probabilities = np.asarray(probabilities, np.float64)
    if not len(probabilities):
        return 0.0
    rows, classes = np.arange(len(probabilities)), probabilities.shape[1]
    cumulative = np.cumsum(probabilities, axis=1)
    predicted = probabilities.argmax(axis=1)
    # The ECE needs only whether the drawn label is the predicted one: the draw u * total lands in
    # the predicted class's stretch of the cumulative sum. The last class takes what rounding leaves.
    low = np.where(predicted > 0, cumulative[rows, np.maximum(predicted - 1, 0)], -np.inf)
    high = np.where(predicted < classes - 1, cumulative[rows, predicted], np.inf)
    confidence = probabilities.max(axis=1)
    index = _bin_index(confidence, ECE_BINS)
    sums = np.bincount(index, weights=confidence, minlength=ECE_BINS)
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(draws):
        drawn = rng.random((len(probabilities), 1))[:, 0] * cumulative[:, -1]
        hits = np.bincount(index, weights=((drawn > low) & (drawn <= high)).astype(np.float64), minlength=ECE_BINS)
        errors.append(np.sum(np.abs(hits - sums)) / len(probabilities))
    return float(np.mean(errors))


def fit_temperature(probabilities, labels, prior_width=None):
    """The T in ``TEMPERATURE_RANGE`` that minimises the NLL of ``tempered(probabilities, T)``.

    With ``prior_width`` s, the NLL summed over the images plus ``(log T)**2 / (2 s**2)``: the most
    probable T under a normal prior on log T centred on T = 1 (no change), which a few images
    cannot pull far and many images outweigh. A one-dimensional bounded search on log T (scipy's
    ``minimize_scalar``); the NLL is convex in 1/T, so the minimum is the global one. Raises
    ValueError on non-finite probabilities.
    """
    from scipy.optimize import minimize_scalar

    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        raise ValueError("calibration needs validation images: none were given.")
    if not np.all(np.isfinite(probabilities)):
        raise ValueError("calibration got non-finite probabilities: the model diverged (NaN or inf outputs).")
    prior = 0.0 if prior_width is None else 1.0 / (2.0 * prior_width**2 * len(labels))  # per image
    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(tempered(probabilities, np.exp(log_t)), labels) + prior * log_t**2,
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


# The rule for the temperature a run ships (benchmarks/CONFIDENCE.md, "The temperature against the
# validation set's size"): the most probable T under a normal prior on log T of this width. 0.5 lets
# the temperatures seen on 200 images (0.45-1.0) through and keeps 6-25 images from the free fit's harm
# (held-out NLL +0.5 to +1.1 nats on the photos); 0.25 gave up half the gain on 25 digits, 1.0 let 6
# photos worsen NLL by 0.14.
PRIOR_WIDTH = 0.5
RULE = f"the most probable T under a normal prior on log T, centred on 1 with width {PRIOR_WIDTH}"


@dataclasses.dataclass(frozen=True)
class TemperatureChoice:
    """The temperature a run ships, and where it comes from."""

    temperature: float  # what the model divides its logits by
    fitted: float  # the T that minimises the validation NLL alone
    images: int  # validation images it was fitted on

    @property
    def shrunk(self):
        """Whether the prior moved T visibly (by more than 5%) from the validation images' own fit."""
        return abs(np.log(self.temperature / self.fitted)) > 0.05

    def reason(self):
        """Why the temperature is what it is, in words."""
        if not self.shrunk:
            return f"fitted on {self.images} validation images"
        return (
            f"fitted on {self.images} validation images, {self.fitted:.3f} on their own, shrunk toward 1 by the "
            "rule's prior (benchmarks/CONFIDENCE.md: the fewer the images, the more)"
        )

    def to_dict(self):
        """What the run records (``result.calibration``); ``rule`` says which rule chose the temperature."""
        return {"temperature": self.temperature, "fitted": self.fitted, "images": self.images, "rule": RULE}

    @classmethod
    def from_dict(cls, values):
        """The choice a run recorded, or None (runs before 0.8.1 recorded only the temperature)."""
        if not isinstance(values, dict):
            return None
        try:
            choice = cls(float(values["temperature"]), float(values["fitted"]), int(values["images"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        low, high = TEMPERATURE_RANGE
        usable = all(low <= value <= high for value in (choice.temperature, choice.fitted)) and choice.images > 0
        return choice if usable else None  # a record edited by hand: no sentence rather than a wrong one


def choose_temperature(probabilities, labels):
    """The temperature a run ships: ``fit_temperature`` with the prior of ``PRIOR_WIDTH`` (few validation
    images leave T near 1; many give the free fit), beside the free fit, as a ``TemperatureChoice``."""
    return TemperatureChoice(
        temperature=fit_temperature(probabilities, labels, PRIOR_WIDTH),
        fitted=fit_temperature(probabilities, labels),
        images=len(labels),
    )


@dataclasses.dataclass(frozen=True)
class CalibrationScores:
    """Expected calibration error, negative log-likelihood and Brier score of probabilities."""

    ece: float
    nll: float
    brier: float

    @classmethod
    def of(cls, probabilities, labels):
        return cls(
            expected_calibration_error(probabilities, labels),
            negative_log_likelihood(probabilities, labels),
            brier_score(probabilities, labels),
        )

    def line(self):
        return f"ECE {self.ece:.4f}, NLL {self.nll:.4f}, Brier {self.brier:.4f}"


def accuracy_coverage(probabilities, labels, thresholds=None):
    """For each confidence threshold P: (coverage: the share of images answered with P or more, the
    accuracy on those). Images under P would be answered "unknown" (``predict --min-confidence P``)."""
    probabilities = np.asarray(probabilities, np.float64)
    thresholds = np.linspace(0.0, 0.99, 100) if thresholds is None else np.asarray(thresholds, np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    coverage, accuracy = [], []
    for threshold in thresholds:
        answered = confidence >= threshold
        coverage.append(float(answered.mean()) if len(answered) else 0.0)
        accuracy.append(float(correct[answered].mean()) if answered.any() else float("nan"))
    return thresholds, np.array(coverage), np.array(accuracy)
