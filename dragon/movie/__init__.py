"""The SXML movie renderer behind ``video.create``.

Frames are composited as torch tensors (premultiplied RGBA, values in 0..1), on the GPU
when Ray gave the worker one and on the CPU otherwise, with the same code. The language
itself (parsing, timing, profiles) lives in :mod:`dragon.sxml`.
"""
