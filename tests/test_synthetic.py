"""The synthetic video families: deterministic for a seed, every object visible on its first frame,
labels where the objects are drawn, and families that differ from each other."""
import numpy as np
import pytest

from dataset.synthetic import FAMILIES


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_is_deterministic_and_labels_cover_the_objects(family):
    make = FAMILIES[family]
    frames, labels = make(np.random.default_rng(3), 12, 64, 96, 3, appear=[0, 0, 6])
    again, labels2 = make(np.random.default_rng(3), 12, 64, 96, 3, appear=[0, 0, 6])
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    assert all(np.array_equal(a, b) for a, b in zip(labels, labels2))
    assert frames[0].shape == (64, 96, 3) and frames[0].dtype == np.uint8 and labels[0].shape == (64, 96)
    assert {1, 2} <= set(np.unique(labels[0]).tolist()) and 3 not in labels[5]   # object 3 enters at frame 6
    assert 3 in np.unique(np.concatenate([lab.ravel() for lab in labels[6:]]))
    # Each object differs from the background where it is drawn (in mean colour, out of 255): a
    # label map shifted off its object, or an object drawn in the background's colours, fails.
    for k in (1, 2):
        inside = frames[0][labels[0] == k].mean(0)
        assert np.abs(inside - frames[0][labels[0] == 0].mean(0)).max() > 15, (family, k)


def test_rich_objects_deform_and_move():
    frames, labels = FAMILIES["rich"](np.random.default_rng(0), 20, 96, 160, 2)
    areas = [(lab == 1).sum() for lab in labels]
    assert len(set(areas)) > 5
    assert not np.array_equal(labels[0], labels[-1])
