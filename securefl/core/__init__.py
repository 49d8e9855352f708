"""The federated core: the round engine, the roles (party, aggregator, authority), messages, fusion."""
