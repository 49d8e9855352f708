"""Transports: how the round engine reaches the parties and the authority."""
