"""Train the two scorers of dragon/media/beats.py; writes dragon/media/beats_model.json.

    pip install -e '.[bench]' && python -m tools.train_beats [--clips 5400] [--workers 2]

The examples are generated training clips (tools/beat_clips, seeds from 0: never the
development seeds the choices were judged on, the held-out seeds of benchmarks/beats.py
nor the tests'), each decoded and tracked exactly as `audio.beats` does. Both scorers
are, per kind of reading, a layer of tanh units and one output (``LEVEL_FIT``,
``BAR_FIT``), fitted to pick the right reading of a clip among its readings (softmax,
cross-entropy), full batch with Adam, a fixed seed and one thread, so the same command
writes the same weights:

1. the level scorer, over the readings of the tracked beats (`beats.level_readings`):
   a clip is an example when one of them is right (beat F-measure, mir_eval's, of at
   least 0.8), the best one its answer;
2. then the bar scorer, over the bar readings (`beats.bar_readings`) of the beats the
   level scorer chose: a clip is an example when those beats are right (90% of them
   within 70 ms of a labelled beat), the labelled bar its answer.

18-45 minutes on 2 cores (the latest run: 45), nearly all of it generating and decoding
the clips. The inputs, the number of clips and units and the weight decay were chosen on
development clips (docs/audio.md), before the held-out run of benchmarks/beats.py: the
bar scorer is the wider and closer fit, since its inputs describe ten styles' bar
patterns (a one-drop's bar is told from the same bar a beat or two off by them alone).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dragon.media import audio, beats
from tools.beat_clips import TOLERANCE, TRAINING, f_measure, generate

OUT = Path(__file__).resolve().parent.parent / "dragon" / "media" / beats.MODEL
LEVEL_RIGHT = 0.8  # beat F of the best reading for a clip to teach the level scorer


@dataclass
class Clip:
    """What one clip teaches: its beat readings' inputs and F-measures, and for each of
    them its bar readings and the index of the labelled one (None: beats not right)."""

    level_inputs: list[np.ndarray]
    level_f: list[float]
    bars: list[tuple[list[tuple[int, int, np.ndarray]], int | None]]


def clip_of(seed: int) -> Clip | None:
    torch.set_num_threads(1)
    clip = generate(seed)
    if clip.meter not in beats.METERS or clip.beats.size == 0:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "clip.flac"
        path.write_bytes(clip.flac())
        features = beats.extract(audio.mono(path, beats.RATE, beats.MAX_SECONDS))
    tracked = beats.track_beats(features)
    if tracked.size < beats.LEVEL_MIN_BEATS:
        return None
    readings = beats.level_readings(tracked)
    return Clip(
        beats.level_inputs(readings, features),
        [f_measure(clip.beats, r / beats.FPS) for r in readings],
        [bar_example(r, features, clip.beats, clip.downbeats, clip.meter) for r in readings],
    )


def bar_example(
    found: np.ndarray, features: beats.Features, labelled: np.ndarray, downbeats: np.ndarray, meter: int
) -> tuple[list[tuple[int, int, np.ndarray]], int | None]:
    seconds = found / beats.FPS
    readings = beats.bar_readings(found, features)
    right = np.mean(np.abs(seconds[:, None] - labelled[None, :]).min(1) < TOLERANCE) >= 0.9
    starts = np.abs(seconds[:, None] - downbeats[None, :]).min(1) < TOLERANCE
    if not right or not starts.any() or found.size < 2 * meter:
        return readings, None
    answer = (meter, int(np.argmax(starts)) % meter)
    return readings, [(m, p) for m, p, _ in readings].index(answer)


@dataclass(frozen=True)
class Fit:
    hidden: int  # tanh units
    weight_decay: float
    epochs: int


LEVEL_FIT = Fit(hidden=16, weight_decay=1e-2, epochs=300)
BAR_FIT = Fit(hidden=32, weight_decay=3e-3, epochs=600)


def fit(groups: dict[Any, torch.Tensor], answers: torch.Tensor, settings: Fit) -> dict[Any, torch.nn.Sequential]:
    """One network per group of readings; a clip's scores are its readings' in the order
    of ``groups``, then of the readings within each group. Each network's inputs are
    standardised (over the group's readings) in its first layer, so inputs of different
    units learn alike and the shipped scorer still takes them raw."""
    torch.manual_seed(0)
    scales = {key: standardisation(x) for key, x in groups.items()}
    nets = {
        key: torch.nn.Sequential(
            torch.nn.Linear(x.shape[2], settings.hidden), torch.nn.Tanh(), torch.nn.Linear(settings.hidden, 1)
        )
        for key, x in groups.items()
    }
    groups = {key: (x - scales[key][0]) / scales[key][1] for key, x in groups.items()}
    parameters = [p for net in nets.values() for p in net.parameters()]
    optimiser = torch.optim.Adam(parameters, lr=0.01, weight_decay=settings.weight_decay)

    def scores() -> torch.Tensor:
        return torch.cat([nets[key](x).squeeze(-1) for key, x in groups.items()], dim=1)

    for _ in range(settings.epochs):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(scores(), answers)
        loss.backward()
        optimiser.step()
    right = (scores().argmax(1) == answers).float().mean().item()
    print(f"  {answers.numel()} examples, loss {loss.item():.3f}, right on them {right:.3f}")
    with torch.no_grad():
        for key, net in nets.items():  # fold the standardisation into the first layer
            mean, spread = scales[key]
            first = net[0]
            first.bias -= first.weight @ (mean / spread)
            first.weight /= spread
    return nets


def standardisation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and spread of each input over every reading of every clip."""
    flat = x.reshape(-1, x.shape[-1])
    return flat.mean(0), flat.std(0) + 1e-6


def layers(net: torch.nn.Sequential) -> dict[str, Any]:
    first, _, last = net
    return {
        "w1": np.round(first.weight.detach().numpy().T, 6).tolist(),
        "b1": np.round(first.bias.detach().numpy(), 6).tolist(),
        "w2": np.round(last.weight.detach().numpy()[0], 6).tolist(),
        "b2": round(float(last.bias.detach()[0]), 6),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=5400)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    seeds = range(TRAINING.start, TRAINING.start + args.clips)
    with Pool(args.workers) as pool:
        clips = [c for c in pool.map(clip_of, seeds, chunksize=8) if c is not None]
    torch.set_num_threads(1)

    print("level scorer")
    taught = [c for c in clips if max(c.level_f) >= LEVEL_RIGHT]
    level = fit(
        {"level": torch.tensor(np.stack([np.stack(c.level_inputs) for c in taught]))},
        torch.tensor([int(np.argmax(c.level_f)) for c in taught]),
        LEVEL_FIT,
    )["level"]

    print("bar scorer")
    with torch.no_grad():
        chosen = [int(level(torch.tensor(np.stack(c.level_inputs))).squeeze(-1).argmax()) for c in clips]
    examples = [c.bars[k] for c, k in zip(clips, chosen, strict=True) if c.bars[k][1] is not None]
    bar = fit(
        {
            meter: torch.tensor(
                np.stack([np.stack([x for m, _, x in readings if m == meter]) for readings, _ in examples])
            )
            for meter in beats.METERS
        },
        torch.tensor([answer for _, answer in examples]),
        BAR_FIT,
    )

    model = {
        "trained_by": "tools/train_beats.py",
        "clips": args.clips,
        "level_examples": len(taught),
        "bar_examples": len(examples),
        "level": layers(level),
        "bar": {str(meter): layers(net) for meter, net in bar.items()},
    }
    OUT.write_text(json.dumps(model, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
