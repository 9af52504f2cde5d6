"""torch ``nn.Module``s and losses, free of I/O and of MLflow (filled by the training issues)."""
