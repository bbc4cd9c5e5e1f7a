"""Reference kernels: slow, obviously correct NumPy loops, one per op.

They are the oracle of the tests and the first thing to read to learn what an op computes.
Names match the device kernels (``max_pool2d_forward`` …) where an op has a device kernel.
"""
