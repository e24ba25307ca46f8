"""Joining what different protocols and instruments said about one charging session: the
charger's OCPP meter readings held against the analyzer's measurement."""
