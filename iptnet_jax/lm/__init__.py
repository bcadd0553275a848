"""LM: the VSLNet moment-localization module (model, losses, span inference, metrics)."""
