"""Model-agnostic decoding: the one beam search (width 1 = greedy) and sampling."""

from nmt.search.beam import BeamConfig, Hypothesis, Stepper, beam_search
from nmt.search.sample import SampleConfig, sample

__all__ = [
    "BeamConfig",
    "Hypothesis",
    "SampleConfig",
    "Stepper",
    "beam_search",
    "sample",
]
