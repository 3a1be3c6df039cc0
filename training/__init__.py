"""PyTorch training of the Growing NCA (the only part of cellsim that uses torch)."""
