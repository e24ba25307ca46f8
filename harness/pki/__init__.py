"""Certificates: builders, the generated test PKIs, and the TLS material the protocols need."""
