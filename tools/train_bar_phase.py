"""Train the bar scorer of dragon/media/beats.py; writes dragon/media/bar_phase.json.

    python -m tools.train_bar_phase [--clips 900] [--workers 2]

The examples are generated development clips (tools/beat_clips, seeds from 100000: never
the held-out seeds of benchmarks/beats.py nor the tests'). Each clip is decoded and its
beats tracked exactly as `audio.beats` does; a clip whose tracked beats are right (90%
of them within 70 ms of a labelled beat) is one example: its bar readings
(`beats.bar_readings`) and which of them is the labelled one. The scorer, per meter a
layer of 16 tanh units and one output, is fitted to pick it (softmax over the readings
of a clip, cross-entropy), full batch with Adam and a fixed seed, on one thread, so the
same command writes the same weights. About 10 minutes on 2 cores, nearly all of it
generating and decoding the clips.

The number of clips, units and the weight decay were chosen by 3-fold cross-validation
on these development clips (docs/audio.md), before the one held-out run of
benchmarks/beats.py.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

from dragon.media import audio, beats
from tools.beat_clips import DEVELOPMENT, generate

OUT = Path(__file__).resolve().parent.parent / "dragon" / "media" / beats.BAR_SCORER
HIDDEN = 16
WEIGHT_DECAY = 1e-2
EPOCHS = 300
TOLERANCE = 0.07  # seconds: a tracked beat within this of a labelled one is right (mir_eval's window)

Example = tuple[list[tuple[int, int, np.ndarray]], int]


def example(seed: int) -> Example | None:
    """A clip's bar readings and the index of the labelled one; None when its tracked
    beats are wrong (no reading of them is right) or it has no bars."""
    torch.set_num_threads(1)
    clip = generate(seed)
    if clip.meter not in beats.METERS:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "clip.flac"
        path.write_bytes(clip.flac())
        features = beats.extract(audio.mono(path, beats.RATE, beats.MAX_SECONDS))
    found = beats.track_beats(features)
    if found.size < 2 * clip.meter or clip.beats.size == 0:
        return None
    seconds = found / beats.FPS
    if np.mean(np.abs(seconds[:, None] - clip.beats[None, :]).min(1) < TOLERANCE) < 0.9:
        return None
    starts = np.abs(seconds[:, None] - clip.downbeats[None, :]).min(1) < TOLERANCE
    if not starts.any():
        return None
    readings = beats.bar_readings(found, features)
    labelled = (clip.meter, int(np.argmax(starts)) % clip.meter)
    return readings, [(meter, phase) for meter, phase, _ in readings].index(labelled)


class Scorer(torch.nn.Module):
    def __init__(self, inputs: dict[int, int]):
        super().__init__()
        self.meters = torch.nn.ModuleDict(
            {
                str(meter): torch.nn.Sequential(torch.nn.Linear(n, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 1))
                for meter, n in inputs.items()
            }
        )

    def forward(self, inputs: dict[int, torch.Tensor]) -> torch.Tensor:
        """(clips, readings) scores, the readings in the order of beats.bar_readings."""
        return torch.cat([self.meters[str(meter)](x).squeeze(-1) for meter, x in inputs.items()], dim=1)


def train(examples: list[Example]) -> Scorer:
    torch.manual_seed(0)
    meters = list(dict.fromkeys(meter for meter, _, _ in examples[0][0]))
    inputs = {
        meter: torch.tensor(np.stack([np.stack([x for m, _, x in readings if m == meter]) for readings, _ in examples]))
        for meter in meters
    }
    target = torch.tensor([label for _, label in examples])
    scorer = Scorer({meter: x.shape[2] for meter, x in inputs.items()})
    optimiser = torch.optim.Adam(scorer.parameters(), lr=0.01, weight_decay=WEIGHT_DECAY)
    for _ in range(EPOCHS):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(scorer(inputs), target)
        loss.backward()
        optimiser.step()
    right = (scorer(inputs).argmax(1) == target).float().mean().item()
    print(f"{len(examples)} examples, final loss {loss.item():.3f}, right on the training clips {right:.3f}")
    return scorer


def weights(scorer: Scorer, clips: int, examples: int) -> dict:
    meters = {}
    for meter, layers in scorer.meters.items():
        first, _, last = layers
        meters[meter] = {
            "w1": np.round(first.weight.detach().numpy().T, 6).tolist(),
            "b1": np.round(first.bias.detach().numpy(), 6).tolist(),
            "w2": np.round(last.weight.detach().numpy()[0], 6).tolist(),
            "b2": round(float(last.bias.detach()[0]), 6),
        }
    return {"trained_by": "tools/train_bar_phase.py", "clips": clips, "examples": examples, "meters": meters}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=900)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    seeds = range(DEVELOPMENT.start, DEVELOPMENT.start + args.clips)
    with Pool(args.workers) as pool:
        examples = [e for e in pool.map(example, seeds, chunksize=8) if e is not None]
    torch.set_num_threads(1)
    scorer = train(examples)
    OUT.write_text(json.dumps(weights(scorer, args.clips, len(examples)), separators=(",", ":")) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
