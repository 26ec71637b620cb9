"""The toy-shapes world: a tiny, fully owned text-to-image model that knows concepts.

It exists so that every test of the unlearning engine runs a real diffusion model on
real concepts without downloading anything.
"""
