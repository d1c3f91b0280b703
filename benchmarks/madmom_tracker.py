"""madmom's downbeat tracker as a line-by-line server, for benchmarks/beats.py.

Run by the interpreter of a separate environment that has madmom 0.16.1
(benchmarks/madmom_env.sh builds one): madmom's last release does not build or import on
Python 3.11 as published, and it pins an older numpy than Dragon's, so it cannot share
Dragon's environment. Each line on stdin is the path of a 44.1 kHz mono WAV file (the
rate madmom's models were trained at); each line on stdout is a JSON object with the
beats and downbeats of madmom's RNNDownBeatProcessor and DBNDownBeatTrackingProcessor
(bars of 3 or 4 beats, its documented use) and the CPU seconds they took. The models load
once, before the first line, so their loading is not counted per clip.
"""

import json
import sys
import time

from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor


def main() -> None:
    activations = RNNDownBeatProcessor()
    decode = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        started = time.process_time()
        found = decode(activations(line.strip()))
        cpu = time.process_time() - started
        beats = found[:, 0] if len(found) else []
        downbeats = found[found[:, 1] == 1, 0] if len(found) else []
        print(
            json.dumps({"beats": list(map(float, beats)), "downbeats": list(map(float, downbeats)), "cpu": cpu}),
            flush=True,
        )


if __name__ == "__main__":
    main()
