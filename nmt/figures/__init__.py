"""Pictures as PNG files: training curves, attention maps, the beam sweep's plot."""
