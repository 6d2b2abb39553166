"""Stack definitions (one YAML per environment) and the code that registers them."""
