"""Pictures for learners (matplotlib, optional; imported lazily with the Agg backend).

- :mod:`~minicnn.viz.plots`: learning curves, confusion matrices, image grids, signals, segmentation.
- :mod:`~minicnn.viz.features`: what layers compute: :func:`feature_maps`, :func:`filter_responses`,
  :func:`plot_feature_maps`, :func:`plot_filters`, :func:`activation_maximisation`.
- :mod:`~minicnn.viz.attribution`: which pixels a decision rests on: :func:`grad_cam`,
  :func:`grad_cam_plus_plus`, :func:`saliency`, :func:`smooth_grad`, :func:`guided_backprop`,
  :func:`occlusion`, and :func:`overlay_heatmap`, :func:`plot_heatmap`, :func:`plot_attributions`.

Every plotting function writes a PNG and returns its path.
"""
from . import attribution, features, plots  # noqa: F401
from .attribution import (  # noqa: F401
    grad_cam, grad_cam_plus_plus, guided_backprop, occlusion, overlay_heatmap, plot_attributions, plot_heatmap,
    saliency, smooth_grad,
)
from .features import (  # noqa: F401
    activation_maximisation, feature_maps, filter_responses, plot_feature_maps, plot_filters,
)
from .plots import (  # noqa: F401
    _held_out_split, _label_colors, _plt, _save, overlay_labels, plot_cam, plot_class_iou, plot_confusion_matrix,
    plot_images, plot_learning_curves, plot_segmentation, plot_segmentation_curves, plot_signals_per_class,
)

