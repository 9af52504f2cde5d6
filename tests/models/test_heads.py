"""The heads put on a pre-trained backbone."""

from __future__ import annotations

import pytest
import torch

from models.heads import NearestClassMean


def test_nearest_class_mean_is_the_cosine_nearest_normalised_mean():
    desc = torch.tensor([[1.0, 0.0], [3.0, 0.2], [0.0, 1.0], [0.1, 5.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    head = NearestClassMean(2, 2)
    head.set_means(desc, labels)
    # Each descriptor is normalised first: the long (0.1, 5) counts no more than (0, 1).
    expected = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9889, 0.0659]]).mean(0), dim=0)
    assert torch.allclose(head.means[0], expected, atol=1e-3)
    logits = head(torch.tensor([[1.0, 1.9], [2.0, 1.0]]))
    assert logits.argmax(1).tolist() == [1, 0]
    with torch.no_grad():
        head.log_scale.fill_(5.0)  # the temperature changes confidences, never the argmax
    assert head(torch.tensor([[1.0, 1.9], [2.0, 1.0]])).argmax(1).tolist() == [1, 0]


def test_a_class_without_descriptors_is_an_error():
    with pytest.raises(ValueError, match="no descriptor of class index 2"):
        NearestClassMean(2, 3).set_means(torch.ones(4, 2), torch.tensor([0, 1, 0, 1]))
