"""Fit the classic engine's presence score (PRESENCE_WEIGHTS / PRESENCE_BIAS in engines/classic/engine.py).

Rendered TRAINING pairs only (never the validation seeds): plain and widened looks, every tier, both
directions; each query once against its own target (object there when the target mask is not empty) and once
against the next pair's target view (object absent). A logistic regression on the features of
`presence_features` maps them to the chance that the object is there. Prints the constants to paste and the
fit's balanced accuracy at 0.5.

    python benchmarks/calibrate_classic_presence.py --pairs 30
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vggts_cli.engines.base import Reference  # noqa: E402
from vggts_cli.engines.classic import engine as classic  # noqa: E402
from vggts_cli.eval.rendered import directed_views  # noqa: E402
from vggts_cli.synth.rig import TIERS, render_rig_pair, training_seed  # noqa: E402

FIRST_SEED = 700_000  # a block of training seeds no other script here draws


class Recording(classic.ClassicEngine):
    """The classic engine, keeping the presence features of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.features: list[tuple[float, ...]] = []
        original = classic._presence

        def record(candidates, mask):
            self.features.append(classic.presence_features(candidates, mask))
            return original(candidates, mask)

        classic._presence = record  # type: ignore[assignment]


def collect(pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, 5) of the match candidates and whether the object was there (N,) bool."""
    engine = Recording()
    rows, labels = [], []
    for t, tier in enumerate(TIERS):
        for wide in (False, True):
            rendered = [
                render_rig_pair(training_seed(FIRST_SEED + 10_000 * t + i), tier, wide=wide)
                for i in range(pairs)
            ]
            for k, pair in enumerate(rendered):
                for direction in ("ego-exo", "exo-ego"):
                    source, mask, target, truth = directed_views(pair, direction)
                    absent = directed_views(rendered[(k + 1) % pairs], direction)[2]
                    if not mask.any():
                        continue
                    for view, there in ((target, truth.any()), (absent, False)):
                        engine.features.clear()
                        engine.segment(view, [Reference(source, mask, "cross")])
                        features = engine.features[0] if engine.features else (0.0,) * 6
                        rows.append(features[:5])
                        labels.append(there)
            print(f"{tier} {'wide' if wide else 'plain'}: {len(rows)} queries", flush=True)
    return np.array(rows), np.array(labels)


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=30, help="training pairs per tier and look")
    args = parser.parse_args()
    features, there = collect(args.pairs)
    matched = features[:, 0] > 0  # without a match the score is the flow's: nothing to fit
    # Each class weighs as much as the other over ALL queries, not just the matched ones: the queries
    # without a match are nearly all absent ones, already called absent, and balancing the matched rows
    # alone would weigh the few absent targets that match as much as every present one.
    weight = np.where(there, len(there) / (2 * there.sum()), len(there) / (2 * (~there).sum()))
    fit = LogisticRegression(C=1.0, max_iter=1000)
    fit.fit(features[matched], there[matched], sample_weight=weight[matched])
    fitted = np.zeros(len(there))
    fitted[matched] = fit.predict_proba(features[matched])[:, 1]
    current = np.array([classic.match_presence(row) if row[0] > 0 else 0.0 for row in features])
    print(f"{len(there)} queries ({there.sum()} with the object), {matched.sum()} with a match")
    for name, scores in (("the constants in use", current), ("this fit", fitted)):
        said = scores >= 0.5
        accuracy = 0.5 * (said[there].mean() + (~said[~there]).mean())
        print(f"balanced accuracy at 0.5 on the fit data, {name}: {accuracy:.3f}")
    print(f"PRESENCE_WEIGHTS = ({', '.join(f'{w:.3f}' for w in fit.coef_[0])})")
    print(f"PRESENCE_BIAS = {fit.intercept_[0]:.3f}")


if __name__ == "__main__":
    main()
