"""From a float CAModel to an int8 genome: calibration on real trajectories,
post-training quantisation, an exact integer step in torch, and quantisation-aware
fine-tuning whose forward pass is that integer step (docs/quantisation.md)."""
