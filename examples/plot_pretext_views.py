"""
What every pretext task sees
============================

A self-supervised featurizer learns from a task it makes up from unlabeled images:
turn an image and guess the angle, shuffle its tiles and put them back, tell two
augmented views of it from those of other images, paint in what was hidden...
:func:`skssl.plotting.plot_views` draws what the pretext task of every registered
method makes of two images, straight from the task's own ``views`` (the code that
training runs), before any training: a featurizer needs no fit to show its task.

Colorization and split-brain predict colours, so they get colour patches of the two
sample photographs; the others get 8x8 digits, which most methods enlarge to 16x16
first. Then a denoising autoencoder is trained for a few seconds on 1,000 digits, to
draw what it reconstructs and its loss per epoch.
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np

from skssl import DenoisingAEFeaturizer
from skssl.datasets import load_digits_images, load_sample_patches
from skssl.plotting import plot_history, plot_reconstructions, plot_views
from skssl.registry import METHODS

# Twenty epochs of a small autoencoder take seconds, so the docs build's small-settings
# run (--max-epochs 1) keeps them: one epoch would draw only the mean digit.
parser = argparse.ArgumentParser()
parser.add_argument("--max-epochs", type=int, default=None, help="ignored: the example trains for seconds")
parser.parse_known_args()

digits, _ = load_digits_images(n_samples=1100)
patches, _ = load_sample_patches(16, 200, random_state=0)
chroma = patches.astype(np.float32).std(axis=-1).mean(axis=(1, 2))
patches = patches[np.argsort(-chroma)]  # the most colourful patches first: they are drawn
COLOUR_METHODS = {"colorization", "split_brain"}

# %%
# Every method's views
# --------------------
# One panel per registered method: the two images in the first column, then what
# its task makes of them, with the labels the network must predict where there are
# some. DINO and SwAV get two local crops besides their two global views.

fig = plt.figure(figsize=(16, 2.9 * -(-len(METHODS) // 2)), layout="constrained")
for subfigure, (name, method) in zip(fig.subfigures(-(-len(METHODS) // 2), 2).flat, METHODS.items()):
    featurizer = method.estimator(random_state=0)
    if "n_local_crops" in featurizer.get_params():
        featurizer.set_params(n_local_crops=2)
    plot_views(featurizer, patches if name in COLOUR_METHODS else digits, n=2, fig=subfigure)
plt.show()

# %%
# What a denoising autoencoder restores
# -------------------------------------
# The methods that reconstruct their input (denoising, context encoder, MAE,
# colorization, split-brain) can also show what their network makes of it: here the
# decoder of a denoising autoencoder, trained for 20 epochs on 1,000 digits with 30%
# of their pixels zeroed, fills in held-out digits.

denoising = DenoisingAEFeaturizer(max_epochs=20, batch_size=32, random_state=0)
denoising.fit(digits[:1000])
print(f"denoising loss per epoch: {[round(record['loss'], 4) for record in denoising.history_]}")
plot_reconstructions(denoising, digits[1000:], n=4)
plt.show()

# %%
# Its loss per epoch
# ------------------

plot_history(denoising)
plt.show()
