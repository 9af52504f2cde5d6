"""The ImageNet zero-shot reference and the ImageNet prior: the label map, the summed
probabilities, logit fusion only at inference, the stretched input, and the method as a
model folder that every evaluation loads like the others."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.networks import TorchPredictor
from core.params import IMAGENET_LABEL_MAP, ParamsError, parse_params
from core.predictors import load_predictor, to_input
from core.pretrained import PretrainedError, imagenet_labels, label_map_columns
from models.heads import FeatureClassifier, LabelMapPrior
from models.mobilenet import MobileNetV1
from tests.conftest import shared_data

LABELS = ["background", "crib, cot", "desk", "dining table, board", "studio couch, day bed", "tench"]


def test_label_map_columns_match_whole_lines_or_first_names():
    columns, missing = label_map_columns(LABELS, {"bed": ["crib"], "desk": ["desk"],
                                                  "diningtable": ["dining table, board"]},
                                         ["bed", "desk", "diningtable", "sofa"])
    assert columns == [[1], [2], [3], []]
    assert missing == ["sofa"]  # not applicable, never silently dropped
    with pytest.raises(PretrainedError, match=r"imagenet.label_map.bed: \['cot'\] are not ImageNet class names"):
        label_map_columns(LABELS, {"bed": ["cot"]}, ["bed"])


@pytest.mark.shared_data
def test_every_default_label_map_name_is_an_imagenet_class():
    labels = imagenet_labels(shared_data("weights", "coral", "imagenet_labels.txt"))
    columns, missing = label_map_columns(labels, IMAGENET_LABEL_MAP, list(IMAGENET_LABEL_MAP))
    assert not missing and all(columns)
    assert len({i for c in columns for i in c}) == sum(len(c) for c in columns)  # no ImageNet class twice


def test_a_label_map_key_must_be_one_of_our_classes():
    with pytest.raises(ParamsError, match="label_map.*'armchair'"):
        parse_params({"imagenet": {"label_map": {"armchair": ["barber chair"]}}})


def test_the_prior_sums_the_mapped_probabilities_and_renormalises():
    classifier = nn.Linear(2, 4)
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.copy_(torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4])))
    prior = LabelMapPrior.from_columns(classifier, [[1, 2], [3], []])  # class 2 not applicable
    p = prior(torch.zeros(1, 2)).exp()[0]
    assert torch.allclose(p[:2], torch.tensor([0.5 / 0.9, 0.4 / 0.9]), atol=1e-5)
    assert p[2] < 1e-6


def tiny_backbone() -> MobileNetV1:
    torch.manual_seed(0)
    net = MobileNetV1(alpha=0.25, num_classes=6, input_size=32)
    return net.eval()


def test_the_prior_joins_the_head_only_at_inference():
    backbone = tiny_backbone()
    net = FeatureClassifier(backbone, 3, head="ncm", prior_columns=[[1], [2, 3], [4]], prior_weight=2.0)
    desc = torch.randn(5, net.embedding_dim)
    net.head.set_means(desc[:3], torch.tensor([0, 1, 2]))
    net.train()
    assert torch.equal(net.classify(desc), net.head(desc))  # the head learns from renders alone
    net.eval()
    assert torch.allclose(net.classify(desc), net.head(desc) + 2.0 * net.prior(desc))
    zero_shot = FeatureClassifier(tiny_backbone(), 3, head="none", prior_columns=[[1], [2, 3], [4]]).eval()
    assert torch.allclose(zero_shot.classify(desc), zero_shot.prior(desc))
    with pytest.raises(ValueError, match="head 'none' needs the ImageNet prior"):
        FeatureClassifier(tiny_backbone(), 3, head="none")


def test_stretch_resizes_without_padding():
    image = np.zeros((10, 40, 3), np.uint8)
    image[:2] = 255  # the top fifth white
    stretched = to_input(image, 20, "stretch")
    assert stretched.shape == (20, 20, 3)
    assert stretched[:3].min() == 255 and stretched[5:].max() == 0  # the top fifth stays the top fifth
    padded = to_input(image, 20)  # 15 rows added above and below: the image is a band in the middle
    assert padded[10].max() == 0 and padded[17].max() == 0 and not np.array_equal(padded, stretched)
    with pytest.raises(ValueError, match="unknown resize mode 'crop'"):
        to_input(image, 16, "crop")


def test_a_zero_shot_model_folder_round_trips(tmp_path):
    columns = [[1], [2, 3], [4]]
    net = FeatureClassifier(tiny_backbone(), 3, head="none", prior_columns=columns).eval()
    info = {"arch": {"type": "pretrained", "backbone": "mobilenet_v1_025", "padding": "tf", "dropout": 0.0,
                     "head": "none", "prior": {"columns": columns, "weight": 1.0, "imagenet_classes": 6}},
            "input": {"size": 32, "mean": 128 / 255, "std": 128 / 255, "resize": "stretch"},
            "training_data": "none: ImageNet classifier + label map, no CAD"}
    TorchPredictor(net, ("bed", "desk", "sofa"), info).save(tmp_path / "zs")
    loaded = load_predictor(tmp_path / "zs")
    images = [np.random.default_rng(i).integers(0, 256, (20, 30, 3), dtype=np.uint8) for i in range(3)]
    with torch.no_grad():
        expected = torch.softmax(net(loaded.batch(images)), 1).double().numpy()
    assert loaded.resize == "stretch"
    np.testing.assert_allclose(loaded.predict_proba(images), expected, atol=1e-6)
