"""Video on PyAV, one job per module:

- :mod:`.frames`: opening a video locked down, decoding, the picture at given times;
- :mod:`.probe`: the facts video.info reports (stored size, rotation, content type);
- :mod:`.codecs`: which decoder and H.264 encoder run where (NVDEC and NVENC on a worker
  given a GPU, FFmpeg's CPU codecs otherwise) and how the encoder is set up;
- :mod:`.transcode`: conversion and reversal.
"""
