"""torch ``nn.Module``s and losses of seed 000 (GM-CML), free of I/O, logging and MLflow.

``classifiers`` (ZigzagNet, SqueezeNet 1.1, AlexNet-style), ``reconstruction`` (VC, FCN,
DeconvNet), ``conjugate`` (reconstructor -> classifier), ``noise`` (coordinate training,
eq. 8-10), ``losses`` (eq. 4-7, 11-14). The bottom import layer: imports nothing of the project.
"""
