"""The experiment families: the bases experiments share (data wiring, update, evaluation, artifacts).

An experiment module (`experiments/<name>.py`) is its configs and a small
`Experiment` subclass of one of these:

* `images`: likelihood models on MNIST images (VAE, PixelCNN family, flows), one shared evaluation;
* `sequences`: autoregressive models of text, music and audio;
* `adversarial`: GANs (toy, DCGAN, conditional);
* `energy`: energy-based models with Langevin sampling;
* `classical`: EM and other non-gradient fits (GMM, LDA) and 2-D toy problems.

Floors: recipes import models, data, evaluation, viz and training helpers;
nothing below them imports a recipe, and no experiment imports another.
"""
