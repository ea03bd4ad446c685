"""`vggts eval`: correspondence metrics, Ego-Exo4D scoring and prediction, rendered validation tiers."""
