"""Model-agnostic decoding: the one beam search (width 1 = greedy) and sampling."""

from nmt.search.beam import BeamConfig, Hypothesis, beam_search
from nmt.search.ensemble import EnsembleStepper
from nmt.search.sample import SampleConfig, sample
from nmt.search.stepper import Stepper

__all__ = [
    "BeamConfig",
    "EnsembleStepper",
    "Hypothesis",
    "SampleConfig",
    "Stepper",
    "beam_search",
    "sample",
]
