"""The conjugate network (seed 000 Fig. 1a, §VI): a reconstructor feeding a 6-channel classifier."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from models.classifiers import Classifier


class ConjugateOutput(NamedTuple):
    """logits (N, num_classes); descriptor (N, embedding_dim); recon (N, 3, H, W) in [0, 1];
    mu, logvar of the reconstructor's latent (None for deterministic reconstructors)."""

    logits: Tensor
    descriptor: Tensor
    recon: Tensor
    mu: Tensor | None
    logvar: Tensor | None


class ConjugateNet(nn.Module):
    """cls([O, rec(O)]): the classifier sees the image and its semantic reconstruction.

    Training (coordinate training, eq. 8): ``net(x, rec_input=noi(x), cls_input=noi2(x))``
    computes cls([noi'(O), rec(noi(O))]), each sub-network fed its own noised copy of the
    image O. Test: ``net(x)`` computes cls([O, rec(O)]).

    With ``feedback=False`` the reconstruction is detached before the classifier, so the
    classification losses do not reach the reconstructor: the "VC" baseline, a variational
    coder trained without classifier feedback.
    """

    def __init__(self, reconstructor: nn.Module, classifier: Classifier, feedback: bool = True) -> None:
        super().__init__()
        if classifier.in_channels != 6:
            raise ValueError(f"ConjugateNet needs a 6-channel classifier ([image, reconstruction]), got "
                             f"in_channels={classifier.in_channels}: build it with in_channels=6")
        self.reconstructor = reconstructor
        self.classifier = classifier
        self.feedback = feedback

    @staticmethod
    def recon_to_input(recon: Tensor) -> Tensor:
        """[0, 1] semantic channels -> (recon - 0.5) / 0.25, roughly the zero-mean, unit-std
        scale of the normalised image channels they are concatenated with."""
        return (recon - 0.5) / 0.25

    def forward(self, x: Tensor, rec_input: Tensor | None = None, cls_input: Tensor | None = None,
                generator: torch.Generator | None = None) -> ConjugateOutput:
        """x, rec_input, cls_input: (N, 3, H, W) normalised images, H and W multiples of 16;
        ``generator`` draws the reconstructor's latent noise (training mode)."""
        rec = self.reconstructor(x if rec_input is None else rec_input, generator=generator)
        recon = rec.recon if self.feedback else rec.recon.detach()
        image = x if cls_input is None else cls_input
        descriptor = self.classifier.embed(torch.cat([image, self.recon_to_input(recon)], dim=1))  # from (N, 6, H, W)
        return ConjugateOutput(self.classifier.classify(descriptor), descriptor, rec.recon, rec.mu, rec.logvar)
