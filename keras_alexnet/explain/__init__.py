"""Seeing what the network sees: Grad-CAM, occlusion sensitivity, activations, conv1 filters,
the interpretation of a trained model on a labelled folder, and the HTML run report."""

from keras_alexnet.explain.activations import activation_grid, activations, filter_grid, tile
from keras_alexnet.explain.figures import METHODS, explain, output_names
from keras_alexnet.explain.gradcam import GradCam, GradCamExplainer, grad_cam
from keras_alexnet.explain.occlusion import Occlusion, occlusion_sensitivity
from keras_alexnet.explain.pictures import display_image, overlay, save_png
from keras_alexnet.explain.targets import LayerNameError, class_names, convolution_names

__all__ = [
    "METHODS",
    "GradCam",
    "GradCamExplainer",
    "LayerNameError",
    "Occlusion",
    "activation_grid",
    "activations",
    "class_names",
    "convolution_names",
    "display_image",
    "explain",
    "filter_grid",
    "grad_cam",
    "output_names",
    "occlusion_sensitivity",
    "overlay",
    "save_png",
    "tile",
]
