"""SwAV: unit prototypes, and the queue that fills and then joins Sinkhorn-Knopp."""

import torch
from sklearn.datasets import load_digits

from skssl.methods import swav as swav_module
from skssl.methods.swav import SwAVFeaturizer, SwAVTask

from _testing import FAST

X_SMALL = load_digits().data[:96]


def test_swav_prototypes_stay_unit_vectors_and_the_queue_fills_then_joins_sinkhorn(monkeypatch):
    sizes = []
    sinkhorn = swav_module.sinkhorn_knopp

    def recording_sinkhorn(scores, *args):
        sizes.append(scores.shape[0])
        return sinkhorn(scores, *args)

    monkeypatch.setattr(swav_module, "sinkhorn_knopp", recording_sinkhorn)
    featurizer = SwAVFeaturizer(queue_size=40, n_prototypes=10, **FAST).fit(X_SMALL)  # 6 steps of 16
    task = featurizer.task_
    assert isinstance(task, SwAVTask) and not {"queue", "prototypes"} & set(featurizer.get_params())
    torch.testing.assert_close(task.prototypes.weight.norm(dim=1), torch.ones(10))
    assert task.queue.shape == (2, 40, 128) and task.queue_count == 40
    torch.testing.assert_close(task.queue.norm(dim=2), torch.ones(2, 40))
    # one call per global view and step; 16 embeddings a step fill the 40 slots in 3 of 12 steps
    assert sizes == [16] * 2 * 3 + [40 + 16] * 2 * 9, sizes
    assert SwAVFeaturizer(**FAST).fit(X_SMALL).task_.queue.shape == (2, 0, 128)
