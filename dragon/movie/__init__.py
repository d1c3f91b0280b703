"""The SXML movie renderer behind ``video.create``.

Frames are composited as torch tensors (premultiplied RGBA, values in 0..1), on the GPU
when Ray gave the worker one and on the CPU otherwise, with the same code. The language
itself (parsing, timing, profiles) lives in :mod:`dragon.sxml`.

``production`` makes a task's files (preview, export, thumbnail) with one progress;
``segments`` renders ranges of frames on Ray workers; ``render`` is one movie ready to
draw; ``scene``, ``canvas``, ``sources``, ``effects``, ``transitions``, ``filters`` and
``animators`` draw a frame; ``mixer`` mixes the soundtrack; ``encode`` writes and joins
the profile's container and codecs.
"""
