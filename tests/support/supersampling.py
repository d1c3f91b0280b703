"""The reference that antialiasing is measured against: the same frame drawn at twice
the width and height, unfiltered, then area-averaged down (4x supersampling), and the
PSNR between two frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dragon.movie.render import Job, Movie


class Supersampled:
    """Frames of ``job`` drawn with 2x2 samples per pixel."""

    def __init__(self, job: Job, files: dict[str, Path]):
        plain = Movie(job, files)
        self.size = plain.canvas.width, plain.canvas.height
        plain.close()
        self.movie = Movie(job, files, plain.output.scaled(2), antialias=1)

    def picture(self, index: int) -> np.ndarray:
        large = torch.from_numpy(self.movie.picture(index)).permute(2, 0, 1)[None].to(torch.float32)
        small = F.interpolate(large, size=self.size[::-1], mode="area")[0].permute(1, 2, 0)
        return (small + 0.5).floor().clamp(0, 255).to(torch.uint8).numpy()

    def close(self) -> None:
        self.movie.close()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two 8-bit pictures, in dB (99 when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)
